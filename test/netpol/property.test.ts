// The mirror's contract, checked on random policies against the reference evaluator:
//   1. every (source, destination, port) ZT allows is admitted by the generated objects,
//      unless a "narrows" warning names it;
//   2. whatever they admit beyond ZT is named by a "widens" warning, or lies wholly outside
//      the governed namespaces (pods there are not isolated: docs/netpol.md).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalize, type PolicySet, type PortRange, type ServiceAccessPolicy, type ServiceRule } from "../../compiler/model.js";
import { generateNetworkPolicies } from "../../compiler/netpol/generate.js";
import { type FlowScope, netpolOptions, type NetpolWarning } from "../../compiler/netpol/types.js";
import { evaluateServiceReference } from "../../compiler/reference.js";
import { parseSpiffeId, parseSpiffePattern, patternMatches, type SpiffePattern } from "../../compiler/spiffe.js";
import { apiServerRules, validateObject } from "./schema.js";
import { admits, type ClusterView, type Namespace, type Pod } from "./semantics.js";

const TD = "hanzo.ai";
const LOCAL = "c1";
const R1 = "r1"; // remote cluster with a configured CIDR
const R2 = "r2"; // remote cluster without one
const NAMESPACES = ["n1", "n2", "n3", "x9"]; // x9 is never named by a generated policy
const SAS = ["a", "b", "c"];
const PORTS = [1, 79, 80, 81, 443, 5432, 8000, 8001, 8002, 8003, 65535];
const R1_CIDR = "10.201.0.0/16";
const NUM_RUNS = 300;

interface UPod extends Pod {
  readonly id: string;
}

function buildUniverse(): { pods: UPod[]; namespaces: Map<string, Namespace> } {
  const pods: UPod[] = [];
  let n = 0;
  for (const ns of NAMESPACES)
    for (const sa of SAS) {
      n++;
      pods.push({ cluster: LOCAL, namespace: ns, labels: { app: sa }, ip: `10.100.0.${n}`, id: `spiffe://${TD}/${LOCAL}/${ns}/${sa}` });
    }
  let m = 0;
  for (const [cluster, net] of [
    [R1, "10.201"],
    [R2, "10.202"],
  ] as const)
    for (const ns of ["n1", "n2"])
      for (const sa of ["a", "b"]) {
        m++;
        pods.push({ cluster, namespace: ns, labels: { app: sa }, ip: `${net}.0.${m}`, id: `spiffe://${TD}/${cluster}/${ns}/${sa}` });
      }
  const namespaces = new Map(NAMESPACES.map((ns) => [ns, { name: ns, labels: { "kubernetes.io/metadata.name": ns } }]));
  return { pods, namespaces };
}

const UNIVERSE = buildUniverse();

// ---- Random policies ----

const seg = (values: string[]): fc.Arbitrary<string> => fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...values) }, { weight: 1, arbitrary: fc.constant("*") });

const patternText: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(seg([LOCAL, LOCAL, R1, R2]), seg(["n1", "n2", "n3"]), seg(SAS)).map(([c, n, s]) => `spiffe://${TD}/${c}/${n}/${s}`) },
  { weight: 1, arbitrary: fc.constant(`spiffe://${TD}/**`) },
  { weight: 1, arbitrary: seg([LOCAL, R1]).map((c) => `spiffe://${TD}/${c}/**`) },
  { weight: 1, arbitrary: fc.tuple(seg([LOCAL, R1]), seg(["n1", "n2"])).map(([c, n]) => `spiffe://${TD}/${c}/${n}/**`) },
  { weight: 1, arbitrary: fc.constantFrom(`spiffe://${TD}/${LOCAL}/n1/a/**`, `spiffe://${TD}/${LOCAL}/n1`, `spiffe://${TD}/${LOCAL}/n1/a/extra`) },
  { weight: 1, arbitrary: fc.constantFrom(`spiffe://other.org/${LOCAL}/n1/a`, `spiffe://other.org/**`) },
);

const portRange: fc.Arbitrary<PortRange> = fc.oneof(
  fc.constantFrom(80, 443, 5432, 8000, 8002).map((p) => ({ lo: p, hi: p })),
  fc.constant({ lo: 8000, hi: 8002 }),
  fc.constant({ lo: 1, hi: 1000 }),
);
const ports: fc.Arbitrary<PortRange[]> = fc.oneof({ weight: 1, arbitrary: fc.constant<PortRange[]>([{ lo: 0, hi: 65535 }]) }, { weight: 4, arbitrary: fc.array(portRange, { minLength: 1, maxLength: 2 }) });

function pattern(text: string): SpiffePattern {
  const p = parseSpiffePattern(text);
  if (!p.ok) throw new Error(`${text}: ${p.error}`);
  return p.value;
}

const ruleArb = fc.record({
  action: fc.oneof({ weight: 3, arbitrary: fc.constant("ALLOW" as const) }, { weight: 2, arbitrary: fc.constant("DENY" as const) }),
  from: patternText,
  to: fc.array(fc.record({ spiffe: patternText, ports }), { minLength: 1, maxLength: 3 }),
});

const policySetArb: fc.Arbitrary<PolicySet> = fc.array(fc.array(ruleArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 2 }).map((policies) =>
  canonicalize(
    policies.map((rules, pi): ServiceAccessPolicy => {
      const name = `p${pi}`;
      return {
        kind: "ServiceAccessPolicy",
        name,
        defaultAction: "DENY",
        rollout: [],
        agentScopes: [],
        source: `${name}.yaml`,
        rules: rules.map(
          (r, ri): ServiceRule => ({
            id: `${name}/rule-${ri + 1}`,
            name: null,
            action: r.action,
            from: pattern(r.from),
            to: r.to.map((t) => ({ spiffe: pattern(t.spiffe), ports: t.ports })),
            at: { file: `${name}.yaml`, line: ri + 1, col: 1 },
          }),
        ),
      };
    }),
  ),
);

// ---- The check ----

function inScope(s: FlowScope, src: UPod, dst: UPod, port: number): boolean {
  const sid = parseSpiffeId(src.id);
  const did = parseSpiffeId(dst.id);
  if (!sid.ok || !did.ok) throw new Error("bad universe id");
  if (!patternMatches(pattern(s.source), sid.value) || !patternMatches(pattern(s.destination), did.value)) return false;
  if (s.sourceClustersExcept?.includes(src.cluster) || s.destinationClustersExcept?.includes(dst.cluster)) return false;
  return s.ports.some((r) => port >= r.lo && port <= r.hi);
}

function named(warnings: readonly NetpolWarning[], effect: "widens" | "narrows", src: UPod, dst: UPod, port: number): boolean {
  return warnings.some((w) => w.effect === effect && w.scope.some((s) => inScope(s, src, dst, port)));
}

interface Tally {
  flows: number;
  allowed: number;
  widened: number;
  narrowed: number;
  outOfScope: number;
}

function checkSet(set: PolicySet, tally: Tally): void {
  const result = generateNetworkPolicies(set, netpolOptions({ cluster: LOCAL, trustDomain: TD, remoteCidrs: { [R1]: [R1_CIDR] } }));
  for (const obj of result.objects) {
    validateObject(obj);
    expect(apiServerRules(obj)).toEqual([]);
  }
  const governed = new Set(result.namespaces);
  const view: ClusterView = { cluster: LOCAL, namespaces: UNIVERSE.namespaces, policies: result.objects };
  for (const src of UNIVERSE.pods)
    for (const dst of UNIVERSE.pods) {
      if (src.cluster !== LOCAL && dst.cluster !== LOCAL) continue; // neither end is in this cluster
      const ungoverned = [src, dst].every((p) => p.cluster !== LOCAL || !governed.has(p.namespace));
      for (const port of PORTS) {
        tally.flows++;
        const zt = evaluateServiceReference(set, { source: src.id, destination: dst.id, port }).allow;
        const np = admits(view, src, dst, port);
        if (zt) tally.allowed++;
        if (zt && !np) {
          tally.narrowed++;
          if (!named(result.warnings, "narrows", src, dst, port)) {
            throw new Error(`false denial not named by any warning: ${src.id} -> ${dst.id}:${port}\n${result.yaml}`);
          }
        }
        if (!zt && np) {
          if (ungoverned) {
            tally.outOfScope++;
            continue;
          }
          tally.widened++;
          if (!named(result.warnings, "widens", src, dst, port)) {
            throw new Error(`admitted beyond ZT without a warning: ${src.id} -> ${dst.id}:${port}\n${result.yaml}`);
          }
        }
      }
    }
}

describe("netpol property: mirrors the reference evaluator", () => {
  it(`no unnamed false denial, no unnamed widening (${NUM_RUNS} random policy sets)`, () => {
    const tally: Tally = { flows: 0, allowed: 0, widened: 0, narrowed: 0, outOfScope: 0 };
    fc.assert(
      fc.property(policySetArb, (set) => {
        checkSet(set, tally);
      }),
      { numRuns: NUM_RUNS, seed: 0x2e70, endOnFailure: true },
    );
    // The generator must actually produce the interesting cases, or the property is vacuous.
    expect(tally.allowed).toBeGreaterThan(tally.flows / 100);
    expect(tally.widened).toBeGreaterThan(0);
    expect(tally.narrowed).toBeGreaterThan(0);
    console.log(`netpol property: ${NUM_RUNS} policy sets, ${tally.flows} flows checked, ${tally.allowed} allowed by ZT, ${tally.widened} widened (named), ${tally.narrowed} narrowed (named), ${tally.outOfScope} outside governed namespaces`);
  });

  it("with every cluster mapped and no ** or unmappable IDs, the local mirror is exact", () => {
    const exactPattern = fc.tuple(fc.constant(LOCAL), seg(["n1", "n2", "n3"]), seg(SAS)).map(([c, n, s]) => `spiffe://${TD}/${c}/${n}/${s}`);
    const exactRule = fc.record({
      action: fc.constantFrom("ALLOW" as const, "DENY" as const),
      from: exactPattern,
      to: fc.array(fc.record({ spiffe: exactPattern, ports }), { minLength: 1, maxLength: 3 }),
    });
    let flows = 0;
    fc.assert(
      fc.property(fc.array(exactRule, { minLength: 1, maxLength: 6 }), (rules) => {
        const set = canonicalize([
          {
            kind: "ServiceAccessPolicy",
            name: "exact",
            defaultAction: "DENY",
            rollout: [],
            agentScopes: [],
            source: "exact.yaml",
            rules: rules.map((r, i) => ({ id: `exact/rule-${i + 1}`, name: null, action: r.action, from: pattern(r.from), to: r.to.map((t) => ({ spiffe: pattern(t.spiffe), ports: t.ports })), at: { file: "exact.yaml", line: i + 1, col: 1 } })),
          },
        ]);
        const result = generateNetworkPolicies(set, netpolOptions({ cluster: LOCAL, trustDomain: TD }));
        expect(result.warnings).toEqual([]);
        const governed = new Set(result.namespaces);
        const view: ClusterView = { cluster: LOCAL, namespaces: UNIVERSE.namespaces, policies: result.objects };
        const local = UNIVERSE.pods.filter((p) => p.cluster === LOCAL);
        for (const src of local)
          for (const dst of local) {
            if (!governed.has(src.namespace) && !governed.has(dst.namespace)) continue;
            for (const port of PORTS) {
              flows++;
              const zt = evaluateServiceReference(set, { source: src.id, destination: dst.id, port }).allow;
              if (admits(view, src, dst, port) !== zt) throw new Error(`mismatch ${src.id} -> ${dst.id}:${port} zt=${zt}\n${result.yaml}`);
            }
          }
      }),
      { numRuns: 200, seed: 0x2e71, endOnFailure: true },
    );
    expect(flows).toBeGreaterThan(0);
  });
});
