// zt suggest's promise, proven on generated observations: the suggested policy, as YAML that
// `zt check` accepts and compiled into the module that enforces, allows every observed flow
// and nothing it does not name. Brute force over a universe of requests: every source and
// destination of the generator's alphabet (observed or not, and IDs of other shapes that a
// namespace's `*` must not reach) at every port the flows use and the ports beside them.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { loadPolicyTexts } from "../../compiler/load.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { buildSuggestion, type Generalize, type ObservedFlow } from "../../host/rollout/suggest.js";

const TDS = ["a.org", "b.org"];
const CLUSTERS = ["c1", "c2"];
const NAMESPACES = ["n1", "n2"];
const ACCOUNTS = ["s1", "s2", "s3"];
const workloads = TDS.flatMap((td) => CLUSTERS.flatMap((c) => NAMESPACES.flatMap((n) => ACCOUNTS.map((s) => `spiffe://${td}/${c}/${n}/${s}`))));
// IDs a namespace pattern `spiffe://td/c/n/*` must not match, and one that is no workload at all.
const OTHER_SHAPES = ["spiffe://a.org/c1/n1/s1/extra", "spiffe://a.org/c1/n1", "spiffe://a.org/c1", "spiffe://b.org/c2/n2/s3/x/y"];
const IDS = [...workloads, ...OTHER_SHAPES];
const PORTS = [1, 2, 3, 4, 5, 8, 443, 5432];

const flowArb = fc.record({ source: fc.constantFrom(...IDS), destination: fc.constantFrom(...IDS), port: fc.constantFrom(...PORTS), count: fc.integer({ min: 1, max: 5 }) });

/** Distinct (source, destination, port), as the trail reader delivers them. */
function observations(raw: ReadonlyArray<{ source: string; destination: string; port: number; count: number }>): ObservedFlow[] {
  const m = new Map<string, ObservedFlow>();
  raw.forEach((f, i) => {
    const ts = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
    m.set(`${f.source} ${f.destination} ${f.port}`, { ...f, first_seen: ts, last_seen: ts });
  });
  return [...m.values()];
}

/** The namespace a workload ID belongs to (trust domain, cluster, namespace), or null. */
function namespaceOf(id: string): string | null {
  const m = /^spiffe:\/\/([^/]+)\/([^/]+)\/([^/]+)\/[^/]+$/.exec(id);
  return m ? `${m[1]}/${m[2]}/${m[3]}` : null;
}

/** What the suggestion names: the flows themselves, or with namespaces any account of an observed source's namespace. */
function named(flows: readonly ObservedFlow[], generalize: Generalize): (source: string, destination: string, port: number) => boolean {
  const exact = new Set(flows.map((f) => `${f.source} ${f.destination} ${f.port}`));
  if (generalize === "none") return (s, d, p) => exact.has(`${s} ${d} ${p}`);
  const byNs = new Set(flows.map((f) => `${namespaceOf(f.source) ?? f.source} ${f.destination} ${f.port}`));
  return (s, d, p) => exact.has(`${s} ${d} ${p}`) || (namespaceOf(s) !== null && byNs.has(`${namespaceOf(s)} ${d} ${p}`));
}

async function moduleOf(yaml: string): Promise<PolicyRuntime> {
  const loaded = loadPolicyTexts([{ file: "suggested.yaml", text: yaml }]);
  if (!loaded.ok) throw new Error(`the suggestion does not validate:\n${loaded.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join("\n")}\n${yaml}`);
  return PolicyRuntime.load(compilePolicySet(loaded.set).wasm);
}

describe("zt suggest: the suggestion allows exactly what it names", () => {
  for (const generalize of ["none", "namespace"] as const) {
    it(`generalize ${generalize}: every observed flow allowed, every other request of the universe denied`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(flowArb, { minLength: 0, maxLength: 14 }), async (raw) => {
          const flows = observations(raw);
          const s = buildSuggestion(flows, [], { name: "suggested", generalize });
          const rt = await moduleOf(s.yaml);
          for (const f of flows) expect(rt.evaluateService({ source: f.source, destination: f.destination, port: f.port }).allow, `${f.source} -> ${f.destination}:${f.port}`).toBe(true);
          const isNamed = named(flows, generalize);
          const ports = [...new Set(PORTS.flatMap((p) => [p - 1, p, p + 1]))];
          for (const source of IDS) {
            for (const destination of IDS) {
              for (const port of ports) {
                const allow = rt.evaluateService({ source, destination, port }).allow;
                if (allow !== isNamed(source, destination, port)) expect.fail(`${source} -> ${destination}:${port}: module says ${allow ? "ALLOW" : "DENY"}\n${s.yaml}`);
              }
            }
          }
          // The smallest: one rule per distinct source (pattern), one entry per destination in it.
          const sources = new Set(flows.map((f) => (generalize === "namespace" && namespaceOf(f.source) ? namespaceOf(f.source) : f.source)));
          expect(s.rules).toBe(sources.size);
          expect(s.flows).toBe(flows.length);
          if (generalize === "namespace") for (const g of s.generalized) expect(s.yaml).toContain(`stands for the observed service accounts ${g.service_accounts.join(", ")}`);
          else expect(s.generalized).toEqual([]);
        }),
        { numRuns: 60 },
      );
    });
  }

  it("consecutive observed ports become one range; flows an explicit DENY rule refused are named in a comment, not allowed", async () => {
    const at = "2026-01-01T00:00:00.000Z";
    const f = (port: number, destination = "spiffe://a.org/c1/n1/db"): ObservedFlow => ({ source: "spiffe://a.org/c1/n1/app", destination, port, count: 1, first_seen: at, last_seen: at });
    const s = buildSuggestion([f(8000), f(8001), f(8002), f(9000)], [f(22, "spiffe://a.org/c1/n1/bastion")], { name: "app-db", generalize: "none" });
    expect(s.yaml).toContain("ports:\n            - 8000-8002\n            - 9000\n");
    expect(s.yaml).toContain("# Not included: 1 flow an explicit DENY rule refused");
    expect(s.yaml).toContain("#   spiffe://a.org/c1/n1/app -> spiffe://a.org/c1/n1/bastion:22 (1)");
    const rt = await moduleOf(s.yaml);
    expect(rt.evaluateService({ source: f(0).source, destination: "spiffe://a.org/c1/n1/bastion", port: 22 }).allow).toBe(false);
    expect(rt.evaluateService({ source: f(0).source, destination: f(0).destination, port: 8003 }).allow).toBe(false);
  });
});
