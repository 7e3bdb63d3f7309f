// Policy text nested deeper than the YAML parser survives is refused with file:line:col before
// it is parsed (issue 22): `- - - …` 50,000 deep used to abort the whole process (a fatal
// out-of-memory inside the parser), `[[[…` 10,000 deep too.
import { describe, expect, it } from "vitest";
import { parsePolicyText } from "../../compiler/parse.js";
import { MAX_BLOCK_COLUMN, MAX_FLOW_DEPTH, yamlNestingError } from "../../compiler/yaml-nesting.js";

describe("nesting bound of policy text", () => {
  it("deep flow collections: refused at the bracket past the bound", () => {
    const r = parsePolicyText("spec:\n  rules: " + "[".repeat(10_000) + "]".repeat(10_000) + "\n", "p.yaml");
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors[0]).toMatchObject({ file: "p.yaml", line: 2, col: 10 + MAX_FLOW_DEPTH });
  });

  it("deep block sequences and mappings: refused where the content starts too far in", () => {
    const seq = parsePolicyText("- ".repeat(50_000) + "x\n", "p.yaml");
    expect(!seq.ok && seq.errors[0]!.message).toMatch(/nesting too deep/);
    const map = Array.from({ length: 200 }, (_, i) => " ".repeat(i) + "a:").join("\n") + " x\n";
    const m = parsePolicyText(map, "p.yaml");
    expect(!m.ok && m.errors[0]).toMatchObject({ line: MAX_BLOCK_COLUMN + 2, message: expect.stringMatching(/column/) });
  });

  it("brackets in quoted scalars and comments do not count; a stray apostrophe hides nothing", () => {
    const quoted = `a: "${"[".repeat(200)}"\nb: '${"{".repeat(200)}'\n# ${"[".repeat(200)}\n`;
    expect(yamlNestingError(quoted)).toBeNull();
    const sneaky = `a: don't\nb: ${"[".repeat(100)}${"]".repeat(100)} # '\n`;
    expect(yamlNestingError(sneaky)).toMatchObject({ line: 2 });
  });

  it("the shipped policies are far inside the bounds", async () => {
    const { readdirSync, readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { POLICIES_DIR } = await import("../support/seed.js");
    for (const f of readdirSync(POLICIES_DIR).filter((n) => n.endsWith(".yaml"))) expect(yamlNestingError(readFileSync(join(POLICIES_DIR, f), "utf8")), f).toBeNull();
  });
});
