// Two parts of a policy set that depend on the destination alone: the scopes an agent's token
// must carry (`agentScopes`) and whether decisions are enforced (`rollout`). Both are exact
// over the destination regions their patterns cut.
import type { PolicySet, RolloutMode } from "../model.js";
import type { SpiffePattern } from "../spiffe.js";
import { collapseRegions, type RegionDesc, regionTree } from "./regions.js";
import type { ChangeLists } from "./service.js";

export interface AgentClass {
  readonly destination: RegionDesc;
  /**
   * Agent requests whose token carries every scope of `has_all` and lacks at least one of
   * `lacks_one_of` (null: any such token, because the other version admits no agent here).
   */
  readonly scopes: { readonly has_all: readonly string[]; readonly lacks_one_of: readonly string[] | null };
  readonly witness: { readonly destination: string; readonly scopes: readonly string[] };
}

export interface EnforcementChange {
  readonly destination: RegionDesc;
  /** The mode the policies set; null: none, the engine's ZT_MODE (or the sidecar's) applies. */
  readonly old: RolloutMode | null;
  readonly new: RolloutMode | null;
  readonly witness: string;
}

interface Indexed<T> {
  pats: SpiffePattern[];
  byIdx: Array<Array<[number, T]>>;
}

/** Every (version, entry) by destination pattern, patterns shared between the versions. */
function index<T>(sets: readonly PolicySet[], entries: (set: PolicySet) => Array<{ destination: SpiffePattern; value: T }>): Indexed<T> {
  const pats: SpiffePattern[] = [];
  const at = new Map<string, number>();
  const byIdx: Array<Array<[number, T]>> = [];
  sets.forEach((set, v) => {
    for (const e of entries(set)) {
      let i = at.get(e.destination.text);
      if (i === undefined) {
        at.set(e.destination.text, (i = pats.length));
        pats.push(e.destination);
      }
      (byIdx[i] ??= []).push([v, e.value]);
    }
  });
  return { pats, byIdx };
}

function serviceDocs(set: PolicySet) {
  return set.policies.flatMap((p) => (p.kind === "ServiceAccessPolicy" ? [p] : []));
}

const subset = (a: readonly string[], b: ReadonlySet<string>): boolean => a.every((x) => b.has(x));

export function diffAgents(oldSet: PolicySet, newSet: PolicySet): ChangeLists<AgentClass> {
  const ix = index([oldSet, newSet], (set) => serviceDocs(set).flatMap((p) => p.agentScopes.map((e) => ({ destination: e.destination, value: e.scopes }))));
  const required = (matched: readonly number[], v: number): string[] | null => {
    let found = false;
    const out = new Set<string>();
    for (const i of matched) {
      for (const [ver, scopes] of ix.byIdx[i] ?? []) {
        if (ver !== v) continue;
        found = true;
        for (const s of scopes) out.add(s);
      }
    }
    return found ? [...out].sort() : null;
  };
  const regions = collapseRegions(
    regionTree(ix.pats),
    (matched) => {
      const value = { old: required(matched, 0), new: required(matched, 1) };
      return { key: JSON.stringify(value.old) === JSON.stringify(value.new) ? "" : JSON.stringify(value), value };
    },
    "",
  );
  const a2d: AgentClass[] = [];
  const d2a: AgentClass[] = [];
  const lost = (from: string[] | null, to: string[] | null): { has_all: string[]; lacks_one_of: string[] | null } | null => {
    // Tokens the `from` version admits and the `to` version does not.
    if (from === null) return null;
    if (to === null) return { has_all: from, lacks_one_of: null };
    const have = new Set(from);
    return subset(to, have) ? null : { has_all: from, lacks_one_of: to.filter((s) => !have.has(s)) };
  };
  for (const r of regions) {
    const down = lost(r.value.old, r.value.new);
    const up = lost(r.value.new, r.value.old);
    if (down) a2d.push({ destination: r.desc, scopes: down, witness: { destination: r.witness, scopes: down.has_all } });
    if (up) d2a.push({ destination: r.desc, scopes: up, witness: { destination: r.witness, scopes: up.has_all } });
  }
  return { allow_to_deny: a2d, deny_to_allow: d2a };
}

export function diffEnforcement(oldSet: PolicySet, newSet: PolicySet): EnforcementChange[] {
  const ix = index([oldSet, newSet], (set) => serviceDocs(set).flatMap((p) => p.rollout.map((e) => ({ destination: e.destination, value: e.mode }))));
  const mode = (matched: readonly number[], v: number): RolloutMode | null => {
    let m: RolloutMode | null = null;
    for (const i of matched) {
      for (const [ver, value] of ix.byIdx[i] ?? []) {
        if (ver !== v) continue;
        if (value === "enforce") return "enforce";
        m = "observe";
      }
    }
    return m;
  };
  const regions = collapseRegions(
    regionTree(ix.pats),
    (matched) => {
      const value = { old: mode(matched, 0), new: mode(matched, 1) };
      return { key: value.old === value.new ? "" : `${value.old}>${value.new}`, value };
    },
    "",
  );
  return regions.map((r) => ({ destination: r.desc, old: r.value.old, new: r.value.new, witness: r.witness }));
}
