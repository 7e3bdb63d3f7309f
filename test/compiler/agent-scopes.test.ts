// agentScopes: the scopes an agent's JWT must carry per destination, compiled into the module.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { buildPolicySet, formatDiagnostic } from "../../compiler/load.js";
import { parsePolicyText } from "../../compiler/parse.js";
import { requiredScopesReference } from "../../compiler/reference.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { spiffeId, spiffePattern } from "../support/policy-arbitraries.js";

const doc = (agentScopes: string) => `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata: {name: agents}
spec:
  rules:
    - from: {spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat"}
      to: [{spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway", ports: [4000]}]
  agentScopes:
${agentScopes}`;

async function runtimeFor(text: string): Promise<PolicyRuntime> {
  const r = parsePolicyText(text, "agents.yaml");
  if (!r.ok) throw new Error(r.errors.map(formatDiagnostic).join("\n"));
  const s = buildPolicySet(r.policies);
  if (!s.ok) throw new Error("invalid set");
  return PolicyRuntime.load(compilePolicySet(s.set).wasm);
}

describe("agentScopes", () => {
  it("unions the scopes of every matching entry; null where none matches", async () => {
    const rt = await runtimeFor(doc(`    - destination: "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway"
      scopes: ["llm:invoke"]
    - destination: "spiffe://hanzo.ai/hanzo-k8s/*/gateway"
      scopes: ["tenant:read", "llm:invoke"]
    - destination: "spiffe://hanzo.ai/hanzo-k8s/hanzo/search"
      scopes: []
`));
    expect(rt.requiredScopes("spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway")).toEqual(["llm:invoke", "tenant:read"]);
    expect(rt.requiredScopes("spiffe://hanzo.ai/hanzo-k8s/lux/gateway")).toEqual(["llm:invoke", "tenant:read"]);
    expect(rt.requiredScopes("spiffe://hanzo.ai/hanzo-k8s/hanzo/search")).toEqual([]);
    expect(rt.requiredScopes("spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres")).toBeNull();
    expect(rt.requiredScopes("not a spiffe id")).toBeNull();
  });

  it("reports bad entries with positions", () => {
    const r = parsePolicyText(doc(`    - destination: "spiffe://hanzo.ai/x/"
      scopes: ["ok", "bad scope"]
    - destination: "spiffe://hanzo.ai/y"
`), "agents.yaml");
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.errors.map(formatDiagnostic)).toEqual([
        'agents.yaml:9:20: spec.agentScopes[0].destination: invalid SPIFFE ID "spiffe://hanzo.ai/x/": SPIFFE ID must not end with a slash',
        'agents.yaml:10:22: spec.agentScopes[0].scopes[1] "bad scope" is invalid: letters, digits, ".", "_", ":" and "-" only',
        'agents.yaml:11:7: spec.agentScopes[1]: missing required field "scopes" (use [] to admit any valid agent token)',
      ]);
  });

  it("the module's answer equals the reference on generated entries", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ destination: spiffePattern, scopes: fc.uniqueArray(fc.constantFrom("a", "b", "c:d"), { maxLength: 3 }) }), { maxLength: 4 }),
        fc.array(spiffeId, { minLength: 1, maxLength: 10 }),
        async (entries, ids) => {
          const text = doc(entries.length === 0 ? "    []\n" : entries.map((e) => `    - destination: "${e.destination}"\n      scopes: ${JSON.stringify(e.scopes)}\n`).join(""));
          const r = parsePolicyText(text, "gen.yaml");
          if (!r.ok) throw new Error(r.errors.map(formatDiagnostic).join("\n"));
          const s = buildPolicySet(r.policies);
          if (!s.ok) throw new Error("invalid");
          const rt = await PolicyRuntime.load(compilePolicySet(s.set).wasm);
          for (const id of ids) expect(rt.requiredScopes(id)).toEqual(requiredScopesReference(s.set, id));
        },
      ),
      { numRuns: 200 },
    );
  });
});
