// The space of SPIFFE IDs cut into regions by a set of patterns: two IDs in one region match
// exactly the same patterns. The regions form a tree over the ID's segments: at each depth an
// ID's next segment is one of the literals the still-matching patterns name there, or any
// other segment; an ID ends at some depth, and once no pattern can tell longer IDs apart they
// form one region. Every region is described in the policy language's own pattern syntax,
// minus exceptions, with one concrete ID in it (its witness). docs/rollout.md "Exact diff".
import type { PatternSegment, SpiffePattern } from "../spiffe.js";

/** The segment at one depth: a literal, or any segment other than the listed literals. */
export type Choice = { readonly lit: string } | { readonly other: readonly string[] };

/** One region's patterns, as sorted pattern indices. */
export interface Leaf {
  readonly matched: readonly number[];
}

export interface RegionNode {
  readonly td: string;
  readonly path: readonly Choice[];
  /** IDs with exactly `path.length` segments. */
  readonly end: Leaf;
  /** One node per literal (sorted), then the "other" node; null when `rest` covers every longer ID. */
  readonly children: readonly RegionNode[] | null;
  readonly rest: Leaf | null;
}

/** A region in pattern syntax: the IDs `pattern` matches and none of `except` matches. */
export interface RegionDesc {
  readonly pattern: string;
  readonly except: readonly string[];
}

interface Pat {
  readonly idx: number;
  readonly segs: readonly PatternSegment[];
  /** Segments before a trailing `**`. */
  readonly len: number;
  readonly glob: boolean;
}

function union(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0) return b as number[];
  if (b.length === 0) return a as number[];
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? a[i]! : Infinity;
    const y = j < b.length ? b[j]! : Infinity;
    if (x === y) {
      out.push(x);
      i++;
      j++;
    } else if (x < y) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

const sortedIdx = (ps: readonly Pat[]): number[] => ps.map((p) => p.idx).sort((a, b) => a - b);

/**
 * exact: patterns without `**` still matching; globLive: `**` patterns whose literal part is
 * not consumed yet; pending: `**` patterns whose literal part is exactly the path (they match
 * every longer ID); satisfied: `**` patterns matching every ID of this subtree.
 */
function node(td: string, path: Choice[], exact: Pat[], globLive: Pat[], pending: Pat[], satisfied: readonly number[]): RegionNode {
  const k = path.length;
  const end = { matched: union(satisfied, sortedIdx(exact.filter((p) => p.len === k))) };
  const deeper = exact.filter((p) => p.len > k);
  const below = union(satisfied, sortedIdx(pending));
  if (deeper.length === 0 && globLive.length === 0) return { td, path, end, children: null, rest: { matched: below } };
  const lits = new Map<string, Pat[]>();
  const stars: Pat[] = [];
  for (const p of [...deeper, ...globLive]) {
    const s = p.segs[k]!;
    if (s.kind === "literal") {
      let l = lits.get(s.value);
      if (!l) lits.set(s.value, (l = []));
      l.push(p);
    } else stars.push(p);
  }
  const child = (choice: Choice, ps: Pat[]): RegionNode => {
    const ex: Pat[] = [];
    const live: Pat[] = [];
    const pend: Pat[] = [];
    for (const p of ps) {
      if (!p.glob) ex.push(p);
      else if (p.len === k + 1) pend.push(p);
      else live.push(p);
    }
    return node(td, [...path, choice], ex, live, pend, below);
  };
  const names = [...lits.keys()].sort();
  const children = names.map((name) => child({ lit: name }, [...lits.get(name)!, ...stars]));
  children.push(child({ other: names }, stars));
  return { td, path, end, children, rest: null };
}

/** The region tree of `patterns`: one root per trust domain they name (other domains match none). */
export function regionTree(patterns: readonly SpiffePattern[]): RegionNode[] {
  const byTd = new Map<string, Pat[]>();
  patterns.forEach((p, idx) => {
    const glob = p.segments.length > 0 && p.segments[p.segments.length - 1]!.kind === "globstar";
    const pat: Pat = { idx, segs: p.segments, len: glob ? p.segments.length - 1 : p.segments.length, glob };
    let l = byTd.get(p.trustDomain);
    if (!l) byTd.set(p.trustDomain, (l = []));
    l.push(pat);
  });
  return [...byTd.keys()].sort().map((td) => {
    const ps = byTd.get(td)!;
    return node(
      td,
      [],
      ps.filter((p) => !p.glob),
      ps.filter((p) => p.glob && p.len > 0),
      ps.filter((p) => p.glob && p.len === 0),
      [],
    );
  });
}

/** A segment none of `taken` is (the witness of an "other" choice). */
export function freshSegment(taken: readonly string[]): string {
  const set = new Set(taken);
  if (!set.has("other")) return "other";
  for (let i = 2; ; i++) if (!set.has(`other-${i}`)) return `other-${i}`;
}

export type Tail = "exact" | "deeper";

export function describeRegion(td: string, path: readonly Choice[], tail: Tail): RegionDesc {
  const seg = (c: Choice): string => ("lit" in c ? c.lit : "*");
  const text = (segs: readonly string[]): string => `spiffe://${td}${segs.map((s) => "/" + s).join("")}${tail === "deeper" ? "/**" : ""}`;
  const base = path.map(seg);
  const except: string[] = [];
  path.forEach((c, i) => {
    if ("other" in c) for (const lit of c.other) except.push(text(base.map((s, j) => (j === i ? lit : s))));
  });
  return { pattern: text(base), except };
}

export function witnessId(td: string, path: readonly Choice[], tail: Tail): string {
  const segs = path.map((c) => ("lit" in c ? c.lit : freshSegment(c.other)));
  if (tail === "deeper") segs.push(freshSegment([]));
  return `spiffe://${td}${segs.map((s) => "/" + s).join("")}`;
}

/** A region of the collapsed tree with its value (never the `none` value). */
export interface Region<V> {
  readonly desc: RegionDesc;
  readonly witness: string;
  readonly key: string;
  readonly value: V;
}

export interface Valued<V> {
  /** Equal keys: equal values. */
  readonly key: string;
  readonly value: V;
}

/** A subtree whose IDs of the node's own length share one value, and all longer IDs another. */
interface Simple<V> {
  readonly end: Valued<V>;
  readonly deeper: Valued<V>;
}

type Collapsed<V> = { simple: Simple<V> | null; regions: Region<V>[] };

/**
 * The regions where `valueOf` is not `none`, merged where the pattern syntax allows it without
 * changing which IDs are covered: sibling subtrees with the same values become one `*`
 * choice (with fewer exceptions), and a subtree whose longer IDs all share one value becomes
 * one `/**` region. `valueOf` is called once per distinct matched set.
 */
export function collapseRegions<V>(roots: readonly RegionNode[], valueOf: (matched: readonly number[]) => Valued<V>, none: string): Region<V>[] {
  const cache = new Map<string, Valued<V>>();
  const value = (leaf: Leaf): Valued<V> => {
    const k = leaf.matched.join(",");
    let v = cache.get(k);
    if (!v) cache.set(k, (v = valueOf(leaf.matched)));
    return v;
  };
  const emit = (out: Region<V>[], td: string, path: readonly Choice[], tail: Tail, v: Valued<V>): void => {
    if (v.key !== none) out.push({ desc: describeRegion(td, path, tail), witness: witnessId(td, path, tail), key: v.key, value: v.value });
  };
  const summaryKey = (s: Simple<V>): string => JSON.stringify([s.end.key, s.deeper.key]);

  const collapse = (n: RegionNode): Collapsed<V> => {
    const end = value(n.end);
    const regions: Region<V>[] = [];
    emit(regions, n.td, n.path, "exact", end);
    if (n.rest) {
      const deeper = value(n.rest);
      emit(regions, n.td, n.path, "deeper", deeper);
      return { simple: { end, deeper }, regions };
    }
    const kids = n.children!.map(collapse);
    const other = kids[kids.length - 1]!;
    const otherKey = other.simple ? summaryKey(other.simple) : null;
    // Every longer ID has one value: one `/**` region.
    if (otherKey !== null && other.simple!.end.key === other.simple!.deeper.key && kids.every((k) => k.simple && summaryKey(k.simple) === otherKey)) {
      const deeper = other.simple!.end;
      emit(regions, n.td, n.path, "deeper", deeper);
      return { simple: { end, deeper }, regions };
    }
    // Literal siblings that look exactly like "any other segment" fold into it.
    const keep: string[] = [];
    kids.slice(0, -1).forEach((k, i) => {
      const choice = n.children![i]!.path[n.path.length] as { lit: string };
      if (otherKey !== null && k.simple && summaryKey(k.simple) === otherKey) return;
      keep.push(choice.lit);
      regions.push(...k.regions);
    });
    if (otherKey !== null) {
      const path = [...n.path, { other: keep }];
      emit(regions, n.td, path, "exact", other.simple!.end);
      emit(regions, n.td, path, "deeper", other.simple!.deeper);
    } else {
      // The other-branch has structure of its own: keep its regions as they are.
      regions.push(...other.regions);
    }
    return { simple: null, regions };
  };
  return roots.flatMap((r) => collapse(r).regions);
}
