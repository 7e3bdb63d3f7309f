// The exact set of service requests (source, destination, port) whose decision differs
// between two policy sets. A decision depends only on which rules' `from` match the source,
// which of those rules' targets match the destination, and where the port falls among their
// ranges; so the source space is cut into regions by the `from` patterns, each source region
// (if its rules differ at all) cuts the destination space by its rules' targets, and each
// destination region cuts the ports at the ranges' ends. Every piece decides one way in each
// version: nothing is sampled.
import type { PolicySet, PortRange, RuleAction, ServiceRule } from "../model.js";
import { allRules } from "../model.js";
import type { SpiffePattern } from "../spiffe.js";
import { collapseRegions, type RegionDesc, regionTree } from "./regions.js";

export interface ServiceClass {
  readonly source: RegionDesc;
  readonly destination: RegionDesc;
  /** Inclusive, sorted, not adjacent. */
  readonly ports: readonly PortRange[];
  /** One request of the class. */
  readonly witness: { readonly source: string; readonly destination: string; readonly port: number };
}

export interface ChangeLists<T> {
  readonly allow_to_deny: readonly T[];
  readonly deny_to_allow: readonly T[];
}

interface Entry {
  readonly action: RuleAction;
  readonly to: SpiffePattern;
  readonly lo: number;
  readonly hi: number;
}

const NONE = "";

function serviceRules(set: PolicySet): ServiceRule[] {
  return allRules(set).filter((r): r is ServiceRule => "from" in r);
}

/** The port ranges where the two versions decide differently, given the entries that apply. */
export function portChanges(old: readonly Entry[], neu: readonly Entry[]): { a2d: PortRange[]; d2a: PortRange[] } {
  const cuts = new Set<number>([0, 65536]);
  for (const e of [...old, ...neu]) {
    cuts.add(e.lo);
    cuts.add(e.hi + 1);
  }
  const points = [...cuts].sort((a, b) => a - b);
  const allowed = (entries: readonly Entry[], p: number): boolean => {
    let allow = false;
    for (const e of entries) {
      if (p < e.lo || p > e.hi) continue;
      if (e.action === "DENY") return false;
      allow = true;
    }
    return allow;
  };
  const a2d: PortRange[] = [];
  const d2a: PortRange[] = [];
  const add = (list: PortRange[], lo: number, hi: number): void => {
    const last = list[list.length - 1];
    if (last && last.hi + 1 === lo) list[list.length - 1] = { lo: last.lo, hi };
    else list.push({ lo, hi });
  };
  for (let i = 0; i + 1 < points.length; i++) {
    const lo = points[i]!;
    const hi = points[i + 1]! - 1;
    const before = allowed(old, lo);
    const after = allowed(neu, lo);
    if (before && !after) add(a2d, lo, hi);
    else if (!before && after) add(d2a, lo, hi);
  }
  return { a2d, d2a };
}

interface DstChange {
  readonly destination: RegionDesc;
  readonly witness: string;
  readonly a2d: readonly PortRange[];
  readonly d2a: readonly PortRange[];
}

/** For a source region's entries in each version: the destination regions and ports that change. */
function destinationChanges(old: readonly Entry[], neu: readonly Entry[]): DstChange[] {
  const pats: SpiffePattern[] = [];
  const index = new Map<string, number>();
  const idx = (p: SpiffePattern): number => {
    let i = index.get(p.text);
    if (i === undefined) {
      index.set(p.text, (i = pats.length));
      pats.push(p);
    }
    return i;
  };
  const oldBy = old.map((e) => ({ e, i: idx(e.to) }));
  const newBy = neu.map((e) => ({ e, i: idx(e.to) }));
  const regions = collapseRegions(
    regionTree(pats),
    (matched) => {
      const hit = new Set(matched);
      const ch = portChanges(
        oldBy.filter((x) => hit.has(x.i)).map((x) => x.e),
        newBy.filter((x) => hit.has(x.i)).map((x) => x.e),
      );
      const key = ch.a2d.length === 0 && ch.d2a.length === 0 ? NONE : JSON.stringify(ch);
      return { key, value: ch };
    },
    NONE,
  );
  return regions.map((r) => ({ destination: r.desc, witness: r.witness, a2d: r.value.a2d, d2a: r.value.d2a }));
}

function signature(entries: readonly Entry[]): string {
  return [...new Set(entries.map((e) => `${e.action} ${e.to.text} ${e.lo}-${e.hi}`))].sort().join("\n");
}

export function diffService(oldSet: PolicySet, newSet: PolicySet): ChangeLists<ServiceClass> {
  const froms: SpiffePattern[] = [];
  const fromIdx = new Map<string, number>();
  const byFrom: [Entry[][], Entry[][]] = [[], []];
  [oldSet, newSet].forEach((set, v) => {
    for (const r of serviceRules(set)) {
      let i = fromIdx.get(r.from.text);
      if (i === undefined) {
        fromIdx.set(r.from.text, (i = froms.length));
        froms.push(r.from);
      }
      const list = (byFrom[v][i] ??= []);
      for (const t of r.to) for (const p of t.ports) list.push({ action: r.action, to: t.spiffe, lo: p.lo, hi: p.hi });
    }
  });
  const sources = collapseRegions(
    regionTree(froms),
    (matched) => {
      const old = matched.flatMap((i) => byFrom[0][i] ?? []);
      const neu = matched.flatMap((i) => byFrom[1][i] ?? []);
      // Same rules apply in both versions: nothing below can differ.
      if (signature(old) === signature(neu)) return { key: NONE, value: [] as DstChange[] };
      const changes = destinationChanges(old, neu);
      return { key: changes.length === 0 ? NONE : JSON.stringify(changes.map((c) => [c.destination, c.a2d, c.d2a])), value: changes };
    },
    NONE,
  );
  const a2d: ServiceClass[] = [];
  const d2a: ServiceClass[] = [];
  for (const s of sources) {
    for (const d of s.value) {
      const mk = (ports: readonly PortRange[]): ServiceClass => ({ source: s.desc, destination: d.destination, ports, witness: { source: s.witness, destination: d.witness, port: ports[0]!.lo } });
      if (d.a2d.length > 0) a2d.push(mk(d.a2d));
      if (d.d2a.length > 0) d2a.push(mk(d.d2a));
    }
  }
  return { allow_to_deny: a2d, deny_to_allow: d2a };
}
