// The exact diff against brute force: on generated policy pairs, every request of a universe
// that covers every way a request can behave (diff-arbitraries.ts) is evaluated by both
// compiled modules; a request's decision flips exactly when it lies in one reported class of
// that direction (never in two), and every witness flips.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import type { PolicySet, ServiceRequest } from "../../compiler/model.js";
import type { RegionDesc } from "../../compiler/diff/regions.js";
import { diffService } from "../../compiler/diff/service.js";
import { diffOperator, type NameSet } from "../../compiler/diff/operator.js";
import { diffAgents, diffEnforcement } from "../../compiler/diff/destinations.js";
import { parseSpiffeId, parseSpiffePattern, patternMatches } from "../../compiler/spiffe.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { ACTIONS, ROLES, SCOPES, SERVICES, specPair, specSet, universeIds, UNIVERSE_PORTS } from "./diff-arbitraries.js";

const IDS = universeIds();

async function runtime(set: PolicySet): Promise<PolicyRuntime> {
  return PolicyRuntime.load(compilePolicySet(set).wasm);
}

/** Which universe IDs a region holds. */
function members(desc: RegionDesc): boolean[] {
  const p = parseSpiffePattern(desc.pattern);
  if (!p.ok) throw new Error(`region pattern ${desc.pattern}: ${p.error}`);
  const ex = desc.except.map((e) => {
    const q = parseSpiffePattern(e);
    if (!q.ok) throw new Error(`region exception ${e}: ${q.error}`);
    return q.value;
  });
  return IDS.map((id) => {
    const v = parseSpiffeId(id);
    if (!v.ok) throw new Error(id);
    return patternMatches(p.value, v.value) && !ex.some((e) => patternMatches(e, v.value));
  });
}

describe("zt diff is exact (service requests)", () => {
  it("a request flips iff it is in exactly one class of that direction; every witness flips", async () => {
    let flips = 0;
    let classes = 0;
    await fc.assert(
      fc.asyncProperty(specPair, async ([a, b]) => {
        const oldSet = specSet(a);
        const newSet = specSet(b);
        const [ro, rn] = await Promise.all([runtime(oldSet), runtime(newSet)]);
        const diff = diffService(oldSet, newSet);
        for (const [dir, list] of [["a2d", diff.allow_to_deny], ["d2a", diff.deny_to_allow]] as const) {
          for (const c of list) {
            const w: ServiceRequest = c.witness;
            const before = ro.evaluateService(w).allow;
            const after = rn.evaluateService(w).allow;
            expect([before, after], `witness of ${JSON.stringify(c)}`).toEqual(dir === "a2d" ? [true, false] : [false, true]);
          }
        }
        // Each class as membership tables over the universe: sources, destinations, ports.
        const idx = (list: typeof diff.allow_to_deny) =>
          list.map((c) => ({ src: members(c.source), dst: members(c.destination), ports: UNIVERSE_PORTS.map((port) => c.ports.some((r) => port >= r.lo && port <= r.hi)) }));
        const a2d = idx(diff.allow_to_deny);
        const d2a = idx(diff.deny_to_allow);
        classes += a2d.length + d2a.length;
        const hits = new Int32Array(UNIVERSE_PORTS.length * 2);
        for (let s = 0; s < IDS.length; s++) {
          const a2dS = a2d.filter((c) => c.src[s]);
          const d2aS = d2a.filter((c) => c.src[s]);
          for (let d = 0; d < IDS.length; d++) {
            hits.fill(0);
            for (const c of a2dS) if (c.dst[d]) for (let p = 0; p < UNIVERSE_PORTS.length; p++) if (c.ports[p]) hits[p]!++;
            for (const c of d2aS) if (c.dst[d]) for (let p = 0; p < UNIVERSE_PORTS.length; p++) if (c.ports[p]) hits[UNIVERSE_PORTS.length + p]!++;
            for (let p = 0; p < UNIVERSE_PORTS.length; p++) {
              const req = { source: IDS[s]!, destination: IDS[d]!, port: UNIVERSE_PORTS[p]! };
              const before = ro.evaluateService(req).allow;
              const after = rn.evaluateService(req).allow;
              const want0 = before && !after ? 1 : 0;
              const want1 = !before && after ? 1 : 0;
              if (hits[p] !== want0 || hits[UNIVERSE_PORTS.length + p] !== want1) {
                expect({ req, got: [hits[p], hits[UNIVERSE_PORTS.length + p]] }, JSON.stringify({ diff, a, b }, null, 1)).toEqual({ req, got: [want0, want1] });
              }
              flips += want0 + want1;
            }
          }
        }
      }),
      { numRuns: 30 },
    );
    // The generators must produce real differences, not only identical pairs.
    expect(classes).toBeGreaterThan(30);
    expect(flips).toBeGreaterThan(1000);
    // A hang guard, not a speed requirement: 330k module evaluations per pair on a shared machine.
  }, 600_000);
});

function subsets<T>(xs: readonly T[]): T[][] {
  return xs.reduce<T[][]>((acc, x) => acc.concat(acc.map((a) => [...a, x])), [[]]);
}

function inNames(set: NameSet, name: string): boolean {
  return "in" in set ? set.in.includes(name) : !set.not_in.includes(name);
}

describe("zt diff is exact (operator and agent requests, enforcement)", () => {
  it("operator: a request flips iff it is in exactly one class of that direction", async () => {
    let flips = 0;
    await fc.assert(
      fc.asyncProperty(specPair, async ([a, b]) => {
        const oldSet = specSet(a);
        const newSet = specSet(b);
        const [ro, rn] = await Promise.all([runtime(oldSet), runtime(newSet)]);
        const diff = diffOperator(oldSet, newSet);
        for (const c of diff.allow_to_deny) expect([ro.evaluateOperator(c.witness).allow, rn.evaluateOperator(c.witness).allow]).toEqual([true, false]);
        for (const c of diff.deny_to_allow) expect([ro.evaluateOperator(c.witness).allow, rn.evaluateOperator(c.witness).allow]).toEqual([false, true]);
        const holds = (c: (typeof diff.allow_to_deny)[number], r: { roles: string[]; service: string; action: string; mfa: boolean; incidentActive: boolean }): boolean =>
          r.roles.some((x) => c.roles.any_of.includes(x)) &&
          !r.roles.some((x) => c.roles.none_of.includes(x)) &&
          inNames(c.service, r.service) &&
          inNames(c.action, r.action) &&
          (c.mfa === null || c.mfa === r.mfa) &&
          (c.incident === null || c.incident === r.incidentActive);
        for (const roles of subsets([...ROLES, "r9"])) {
          for (const service of [...SERVICES, "s9"]) {
            for (const action of [...ACTIONS, "delete"]) {
              for (const mfa of [false, true]) {
                for (const incidentActive of [false, true]) {
                  const req = { roles, service, action, mfa, incidentActive };
                  const before = ro.evaluateOperator(req).allow;
                  const after = rn.evaluateOperator(req).allow;
                  const got = [diff.allow_to_deny.filter((c) => holds(c, req)).length, diff.deny_to_allow.filter((c) => holds(c, req)).length];
                  const want = [before && !after ? 1 : 0, !before && after ? 1 : 0];
                  if (got[0] !== want[0] || got[1] !== want[1]) expect({ req, got }, JSON.stringify({ diff, a: a.ops, b: b.ops })).toEqual({ req, got: want });
                  if (want[0] || want[1]) flips++;
                }
              }
            }
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(flips).toBeGreaterThan(1000);
  }, 600_000);

  it("agents and enforcement: every destination and token decides as the classes say", async () => {
    let flips = 0;
    let changes = 0;
    await fc.assert(
      fc.asyncProperty(specPair, async ([a, b]) => {
        const oldSet = specSet(a);
        const newSet = specSet(b);
        const [ro, rn] = await Promise.all([runtime(oldSet), runtime(newSet)]);
        const agents = diffAgents(oldSet, newSet);
        const enforcement = diffEnforcement(oldSet, newSet);
        const agentAllows = (rt: PolicyRuntime, dst: string, scopes: readonly string[]): boolean => {
          const req = rt.requiredScopes(dst);
          return req !== null && req.every((s) => scopes.includes(s));
        };
        const inRegion = (desc: RegionDesc) => {
          const m = members(desc);
          return (id: string) => m[IDS.indexOf(id)]!;
        };
        const a2d = agents.allow_to_deny.map((c) => ({ c, at: inRegion(c.destination) }));
        const d2a = agents.deny_to_allow.map((c) => ({ c, at: inRegion(c.destination) }));
        for (const { c } of a2d) expect([agentAllows(ro, c.witness.destination, c.witness.scopes), agentAllows(rn, c.witness.destination, c.witness.scopes)]).toEqual([true, false]);
        for (const { c } of d2a) expect([agentAllows(ro, c.witness.destination, c.witness.scopes), agentAllows(rn, c.witness.destination, c.witness.scopes)]).toEqual([false, true]);
        const holds = (x: (typeof a2d)[number], dst: string, scopes: readonly string[]): boolean =>
          x.at(dst) && x.c.scopes.has_all.every((s) => scopes.includes(s)) && (x.c.scopes.lacks_one_of === null || x.c.scopes.lacks_one_of.some((s) => !scopes.includes(s)));
        const modes = enforcement.map((e) => ({ e, at: inRegion(e.destination) }));
        for (const e of enforcement) expect([ro.rolloutFor(e.witness), rn.rolloutFor(e.witness)]).toEqual([e.old, e.new]);
        for (const dst of IDS) {
          const holding = modes.filter((m) => m.at(dst));
          const before = ro.rolloutFor(dst);
          const after = rn.rolloutFor(dst);
          expect(holding.length, dst).toBe(before === after ? 0 : 1);
          if (before !== after) {
            expect([holding[0]!.e.old, holding[0]!.e.new]).toEqual([before, after]);
            changes++;
          }
          for (const scopes of subsets([...SCOPES, "z"])) {
            const was = agentAllows(ro, dst, scopes);
            const now = agentAllows(rn, dst, scopes);
            const got = [a2d.filter((x) => holds(x, dst, scopes)).length, d2a.filter((x) => holds(x, dst, scopes)).length];
            const want = [was && !now ? 1 : 0, !was && now ? 1 : 0];
            if (got[0] !== want[0] || got[1] !== want[1]) expect({ dst, scopes, got }, JSON.stringify({ agents, a: a.scopes, b: b.scopes })).toEqual({ dst, scopes, got: want });
            if (want[0] || want[1]) flips++;
          }
        }
      }),
      { numRuns: 150 },
    );
    expect(flips).toBeGreaterThan(1000);
    expect(changes).toBeGreaterThan(50);
  }, 600_000);
});
