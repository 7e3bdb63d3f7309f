// Every error at once, each as file:line:col: message (golden files next to the fixtures).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { formatDiagnostic, loadPolicyFiles } from "../../compiler/load.js";
import { parsePolicyText } from "../../compiler/parse.js";

const FIXTURES = "test/compiler/fixtures";

describe("policy errors (golden)", () => {
  it.each(["bad-service", "bad-operator", "bad-syntax", "bad-kind"])("%s.yaml", async (name) => {
    const r = await loadPolicyFiles([`${FIXTURES}/${name}.yaml`]);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const expected = readFileSync(`${FIXTURES}/${name}.expected`, "utf8").trimEnd().split("\n");
    expect(r.errors.map(formatDiagnostic)).toEqual(expected);
  });

  it("duplicate policy names across files", async () => {
    const r = await loadPolicyFiles([`${FIXTURES}/dup`]);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map(formatDiagnostic)).toEqual(readFileSync(`${FIXTURES}/dup.expected`, "utf8").trimEnd().split("\n"));
  });

  it("a missing path is an error, not a stack trace", async () => {
    const r = await loadPolicyFiles([`${FIXTURES}/does-not-exist.yaml`]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(formatDiagnostic(r.errors[0]!)).toBe(`${FIXTURES}/does-not-exist.yaml:1:1: cannot read: ENOENT`);
  });

  it("JSON text is accepted like YAML, with positions", () => {
    const ok = parsePolicyText(
      JSON.stringify({ apiVersion: "zt.hanzo.ai/v1", kind: "ServiceAccessPolicy", metadata: { name: "j" }, spec: { rules: [{ from: { spiffe: "spiffe://a.org/x" }, to: [{ spiffe: "spiffe://a.org/y", ports: [1, "2-3"] }] }] } }),
      "api",
    );
    expect(ok.ok).toBe(true);
    const bad = parsePolicyText('{"apiVersion": "zt.hanzo.ai/v1", "kind": "ServiceAccessPolicy",\n "metadata": {"name": "j"}, "spec": {"rules": 5}}', "api");
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.map(formatDiagnostic)).toEqual(["api:2:47: spec.rules must be a list, got a number"]);
  });

  it("rule names become <policy>/<name>, unnamed rules <policy>/rule-N, and collisions are errors", () => {
    const text = (names: Array<string | null>) =>
      `apiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata: {name: p}\nspec:\n  rules:\n` +
      names.map((n) => `    - ${n ? `name: ${n}\n      ` : ""}from: {spiffe: "spiffe://a.org/x"}\n      to: [{spiffe: "spiffe://a.org/y"}]\n`).join("");
    const r = parsePolicyText(text(["db", null, "web"]), "p.yaml");
    expect(r.ok && r.policies[0]!.rules.map((x) => x.id)).toEqual(["p/db", "p/rule-2", "p/web"]);
    const clash = parsePolicyText(text([null, "rule-1"]), "p.yaml");
    expect(clash.ok).toBe(false);
    if (!clash.ok) expect(clash.errors.map(formatDiagnostic)).toEqual(['p.yaml:8:7: duplicate rule name "p/rule-1" (also rule 1 of this policy)']);
  });
});
