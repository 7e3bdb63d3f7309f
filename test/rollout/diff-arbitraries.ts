// Policy pairs over a deliberately tiny alphabet, for the exact diff's property tests: every
// request that can behave differently is in a finite universe the tests enumerate (IDs of at
// most three segments over {x, y, w} in a.org, b.org, c.org; ports 0-9 and 65535; roles,
// services and actions with one name no rule uses).
import fc from "fast-check";
import { stringify } from "yaml";
import type { PolicySet } from "../../compiler/model.js";
import { setFromTexts } from "../support/policy-arbitraries.js";

const TDS = ["a.org", "b.org"];
const SEGS = ["x", "y"];
export const ROLES = ["r1", "r2", "r3"];
export const SERVICES = ["s1", "s2"];
export const ACTIONS = ["read", "write"];
export const SCOPES = ["p", "q", "r"];

export const pattern: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom(...TDS), fc.array(fc.constantFrom(...SEGS, "*"), { maxLength: 2 }), fc.boolean())
  .map(([td, segs, glob]) => `spiffe://${td}${segs.map((s) => "/" + s).join("")}${glob ? "/**" : ""}`);

const portSpec = fc.oneof(fc.integer({ min: 1, max: 6 }), fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 2 })).map(([lo, w]) => `${lo}-${lo + w}`));

export interface SvcRule {
  action: "ALLOW" | "DENY";
  from: string;
  to: Array<{ spiffe: string; ports?: Array<number | string> }>;
}
export interface OpRule {
  role: string;
  targets: Array<{ service: string; actions: string[] }>;
  mfa: boolean;
  incident: boolean;
}
export interface Spec {
  svc: SvcRule[];
  ops: OpRule[];
  rollout: Array<{ destination: string; mode: "observe" | "enforce" }>;
  scopes: Array<{ destination: string; scopes: string[] }>;
}

export const svcRule: fc.Arbitrary<SvcRule> = fc.record({
  action: fc.constantFrom("ALLOW" as const, "ALLOW" as const, "DENY" as const),
  from: pattern,
  to: fc.array(
    fc.tuple(pattern, fc.option(fc.array(portSpec, { minLength: 1, maxLength: 2 }), { nil: undefined })).map(([spiffe, ports]) => (ports ? { spiffe, ports } : { spiffe })),
    { minLength: 1, maxLength: 2 },
  ),
});

export const opRule: fc.Arbitrary<OpRule> = fc.record({
  role: fc.constantFrom(...ROLES),
  targets: fc.array(fc.record({ service: fc.constantFrom(...SERVICES, "*"), actions: fc.uniqueArray(fc.constantFrom(...ACTIONS, "*"), { minLength: 1, maxLength: 2 }) }), { minLength: 1, maxLength: 2 }),
  mfa: fc.boolean(),
  incident: fc.boolean(),
});

const rolloutEntry = fc.record({ destination: pattern, mode: fc.constantFrom("observe" as const, "enforce" as const) });
const scopeEntry = fc.record({ destination: pattern, scopes: fc.uniqueArray(fc.constantFrom(...SCOPES), { maxLength: 2 }) });

export const spec: fc.Arbitrary<Spec> = fc.record({
  svc: fc.array(svcRule, { maxLength: 6 }),
  ops: fc.array(opRule, { maxLength: 4 }),
  rollout: fc.array(rolloutEntry, { maxLength: 2 }),
  scopes: fc.array(scopeEntry, { maxLength: 3 }),
});

type Edit = { at: number; op: "drop" | "flip" | "retarget" | "insert" | "reorder"; svc: SvcRule; opr: OpRule; pat: string };
const edit: fc.Arbitrary<Edit> = fc.record({ at: fc.nat(20), op: fc.constantFrom("drop" as const, "flip" as const, "retarget" as const, "insert" as const, "reorder" as const), svc: svcRule, opr: opRule, pat: pattern });

function applyEdit(s: Spec, e: Edit): Spec {
  const svc = [...s.svc];
  const ops = [...s.ops];
  const i = svc.length > 0 ? e.at % svc.length : 0;
  if (e.op === "insert") svc.splice(i, 0, e.svc);
  else if (svc.length === 0) return { ...s, svc: [e.svc] };
  else if (e.op === "drop") svc.splice(i, 1);
  else if (e.op === "flip") svc[i] = { ...svc[i]!, action: svc[i]!.action === "ALLOW" ? "DENY" : "ALLOW" };
  else if (e.op === "retarget") svc[i] = { ...svc[i]!, to: [{ ...svc[i]!.to[0]!, spiffe: e.pat }, ...svc[i]!.to.slice(1)] };
  else svc.push(...svc.splice(i, 1));
  if (ops.length > 0 && e.at % 3 === 0) ops.splice(e.at % ops.length, 1);
  if (e.at % 4 === 1) ops.push(e.opr);
  const rollout = e.at % 5 === 2 ? [...s.rollout, { destination: e.pat, mode: "enforce" as const }] : s.rollout;
  const scopes = e.at % 5 === 3 ? [...s.scopes, { destination: e.pat, scopes: ["q"] }] : e.at % 5 === 4 ? s.scopes.slice(1) : s.scopes;
  return { svc, ops, rollout, scopes };
}

/** A pair: the second is either independent or the first with a few edits (small, realistic diffs). */
export const specPair: fc.Arbitrary<[Spec, Spec]> = fc.oneof(
  { weight: 1, arbitrary: fc.tuple(spec, spec) },
  { weight: 3, arbitrary: fc.tuple(spec, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([s, edits]): [Spec, Spec] => [s, edits.reduce(applyEdit, s)]) },
);

export function specTexts(s: Spec): string[] {
  const texts: string[] = [];
  const spec: Record<string, unknown> = { rules: s.svc.map((r) => ({ action: r.action, from: { spiffe: r.from }, to: r.to })) };
  if (s.rollout.length > 0) spec.rollout = s.rollout;
  if (s.scopes.length > 0) spec.agentScopes = s.scopes;
  if (s.svc.length > 0 || s.rollout.length > 0 || s.scopes.length > 0) {
    if (s.svc.length === 0) spec.rules = [];
    texts.push(stringify({ apiVersion: "zt.hanzo.ai/v1", kind: "ServiceAccessPolicy", metadata: { name: "svc" }, spec }));
  }
  if (s.ops.length > 0) {
    const rules = s.ops.map((r) => ({ role: r.role, targets: r.targets, conditions: { requireMFA: r.mfa, requireIncident: r.incident } }));
    texts.push(stringify({ apiVersion: "zt.hanzo.ai/v1", kind: "OperatorAccessPolicy", metadata: { name: "ops" }, spec: { rules } }));
  }
  return texts;
}

export function specSet(s: Spec): PolicySet {
  const texts = specTexts(s);
  return texts.length === 0 ? { policies: [] } : setFromTexts(texts);
}

/** Every SPIFFE ID that can behave differently from the others under these patterns. */
export function universeIds(): string[] {
  const out: string[] = [];
  const walk = (prefix: string, depth: number): void => {
    out.push(prefix);
    if (depth === 3) return;
    for (const s of ["x", "y", "w"]) walk(`${prefix}/${s}`, depth + 1);
  };
  for (const td of ["a.org", "b.org", "c.org"]) walk(`spiffe://${td}`, 0);
  return out;
}

export const UNIVERSE_PORTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 65535];
