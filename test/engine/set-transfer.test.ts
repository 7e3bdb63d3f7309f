// The policy set crosses from the build thread in pieces (host/engine/set-transfer.ts): put
// back together, a piece at a time or at once, it is the set that was split, for generated
// sets and for one spanning many pieces.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateRules, policyYaml } from "../../bench/policy-gen.js";
import { SET_CHUNK_RULES, SetAssembler, splitSet } from "../../host/engine/set-transfer.js";
import { policyTexts, setFromTexts } from "../support/policy-arbitraries.js";

describe("set transfer", () => {
  it("generated sets come back equal, whether read at once or after some background steps", () => {
    fc.assert(
      fc.property(policyTexts, fc.nat(5), (texts, steps) => {
        const set = setFromTexts(texts);
        const a = new SetAssembler(splitSet(set));
        for (let i = 0; i < steps; i++) a.step();
        expect(a.set).toEqual(set);
      }),
      { numRuns: 60 },
    );
  });

  it("a 2,501-rule policy next to others spans pieces and keeps every rule in its policy", async () => {
    const set = setFromTexts([policyYaml(generateRules(2_500)), policyYaml(generateRules(3)).replace("name: mesh", "name: other")]);
    const pieces = splitSet(set);
    expect(pieces.rules).toHaveLength(Math.ceil(2_505 / SET_CHUNK_RULES));
    const a = new SetAssembler(pieces);
    a.background();
    while (a.step()) await new Promise((r) => setImmediate(r));
    expect(a.set).toEqual(set);
  });
});
