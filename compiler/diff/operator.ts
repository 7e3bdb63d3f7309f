// The exact set of operator requests (roles, mfa, incident active, service, action) whose
// decision differs. A request is allowed when one of its roles is allowed on its own (the rule
// semantics are an OR over the roles), and only the service and action names some rule of
// either version writes can be told apart; every other name behaves like the target "*".
// So for each named service (and "any other"), each named action (and "any other") and the
// four mfa/incident combinations, the roles each version allows decide the change exactly:
// ALLOW -> DENY for requests holding a role only the old version allows and none the new one
// allows, and the converse.
import type { OperatorRequest, OperatorRule, PolicySet } from "../model.js";
import { allRules } from "../model.js";
import type { ChangeLists } from "./service.js";
import { freshSegment } from "./regions.js";

/** Names: one of `in`, or (when `not_in` is set) any name but those. */
export type NameSet = { readonly in: readonly string[] } | { readonly not_in: readonly string[] };

export interface OperatorClass {
  /** The request holds at least one of `any_of` and none of `none_of`. */
  readonly roles: { readonly any_of: readonly string[]; readonly none_of: readonly string[] };
  readonly service: NameSet;
  readonly action: NameSet;
  /** null: either. */
  readonly mfa: boolean | null;
  readonly incident: boolean | null;
  readonly witness: OperatorRequest;
}

const OTHER = null;
type Name = string | typeof OTHER;

function operatorRules(set: PolicySet): OperatorRule[] {
  return allRules(set).filter((r): r is OperatorRule => "role" in r);
}

function allowedRoles(rules: readonly OperatorRule[], service: Name, action: Name, mfa: boolean, incident: boolean): Set<string> {
  const out = new Set<string>();
  for (const r of rules) {
    if (out.has(r.role)) continue;
    if (r.conditions.requireMFA && !mfa) continue;
    if (r.conditions.requireIncident && !incident) continue;
    const hit = r.targets.some((t) => (t.service === "*" || t.service === service) && t.actions.some((a) => a === "*" || a === action));
    if (hit) out.add(r.role);
  }
  return out;
}

const COMBOS: ReadonlyArray<readonly [boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

/** A set of mfa/incident combinations as the fewest (mfa, incident) conditions, null = either. */
function conditionGroups(combos: ReadonlyArray<readonly [boolean, boolean]>): Array<[boolean | null, boolean | null]> {
  const has = new Set(combos.map(([m, i]) => `${m}${i}`));
  if (has.size === 4) return [[null, null]];
  const out: Array<[boolean | null, boolean | null]> = [];
  for (const m of [false, true]) {
    if (has.has(`${m}false`) && has.has(`${m}true`)) {
      out.push([m, null]);
      has.delete(`${m}false`);
      has.delete(`${m}true`);
    }
  }
  for (const i of [false, true]) {
    if (has.has(`false${i}`) && has.has(`true${i}`)) {
      out.push([null, i]);
      has.delete(`false${i}`);
      has.delete(`true${i}`);
    }
  }
  for (const [m, i] of COMBOS) if (has.has(`${m}${i}`)) out.push([m, i]);
  return out;
}

function nameSet(names: readonly Name[], all: readonly string[]): NameSet {
  if (names.includes(OTHER)) {
    const inside = new Set(names);
    return { not_in: all.filter((n) => !inside.has(n)) };
  }
  return { in: [...(names as string[])].sort() };
}

function pick(set: NameSet): string {
  return "in" in set ? set.in[0]! : freshSegment(set.not_in);
}

/** Groups items by a key, keeping first-seen order. */
function groupBy<T>(items: readonly T[], key: (t: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    let l = m.get(k);
    if (!l) m.set(k, (l = []));
    l.push(it);
  }
  return [...m.values()];
}

interface Cell {
  service: Name;
  action: Name;
  mfa: boolean;
  incident: boolean;
  anyOf: string[];
  noneOf: string[];
}

function classes(cells: readonly Cell[], services: readonly string[], actions: readonly string[]): OperatorClass[] {
  const out: OperatorClass[] = [];
  const roleKey = (c: Cell): string => JSON.stringify([c.anyOf, c.noneOf]);
  // Conditions first, then services, then actions: each step merges what shares everything else.
  const byCond = groupBy(cells, (c) => JSON.stringify([c.service, c.action, roleKey(c)])).flatMap((g) =>
    conditionGroups(g.map((c) => [c.mfa, c.incident] as const)).map((cond) => ({ ...g[0]!, cond })),
  );
  const bySvc = groupBy(byCond, (c) => JSON.stringify([c.action, c.cond, roleKey(c)])).map((g) => ({ ...g[0]!, svc: nameSet(g.map((c) => c.service), services) }));
  for (const g of groupBy(bySvc, (c) => JSON.stringify([c.svc, c.cond, roleKey(c)]))) {
    const first = g[0]!;
    const action = nameSet(g.map((c) => c.action), actions);
    const [mfa, incident] = first.cond;
    out.push({
      roles: { any_of: first.anyOf, none_of: first.noneOf },
      service: first.svc,
      action,
      mfa,
      incident,
      witness: { roles: [first.anyOf[0]!], service: pick(first.svc), action: pick(action), mfa: mfa ?? false, incidentActive: incident ?? false },
    });
  }
  return out;
}

export function diffOperator(oldSet: PolicySet, newSet: PolicySet): ChangeLists<OperatorClass> {
  const old = operatorRules(oldSet);
  const neu = operatorRules(newSet);
  const services = [...new Set([...old, ...neu].flatMap((r) => r.targets.map((t) => t.service)).filter((s) => s !== "*"))].sort();
  const actions = [...new Set([...old, ...neu].flatMap((r) => r.targets.flatMap((t) => t.actions)).filter((a) => a !== "*"))].sort();
  const a2d: Cell[] = [];
  const d2a: Cell[] = [];
  for (const service of [...services, OTHER]) {
    for (const action of [...actions, OTHER]) {
      for (const [mfa, incident] of COMBOS) {
        const before = allowedRoles(old, service, action, mfa, incident);
        const after = allowedRoles(neu, service, action, mfa, incident);
        const lost = [...before].filter((r) => !after.has(r)).sort();
        const gained = [...after].filter((r) => !before.has(r)).sort();
        if (lost.length > 0) a2d.push({ service, action, mfa, incident, anyOf: lost, noneOf: [...after].sort() });
        if (gained.length > 0) d2a.push({ service, action, mfa, incident, anyOf: gained, noneOf: [...before].sort() });
      }
    }
  }
  return { allow_to_deny: classes(a2d, services, actions), deny_to_allow: classes(d2a, services, actions) };
}
