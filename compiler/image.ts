// Validated model -> tries -> compact binary image (layout: assembly/layout.ts).
// - Every SPIFFE pattern of the set (from, to, rollout) is interned once in one ID trie.
// - Service rules become entries under (source pattern, destination pattern) in a pair table.
// - Operator rules live in a second trie: role / service|* / action|* -> entries.
import * as L from "../assembly/layout.js";
import { globKey, pairHash, partnerBit, segHash, starHash } from "./hash.js";
import { allRules, type PolicySet } from "./model.js";
import type { SpiffePattern } from "./spiffe.js";

interface Entry {
  ports: number;
  rule: number;
  flags: number;
}

const utf8 = new TextEncoder();

class TrieNode {
  constructor(readonly hash: number) {}
  readonly literal = new Map<string, TrieNode>();
  star: TrieNode | null = null;
  glob = L.NONE;
  end = L.NONE;
  readonly entries: Entry[] = [];
  id = -1;
}

function child(n: TrieNode, seg: string): TrieNode {
  let c = n.literal.get(seg);
  if (!c) {
    c = new TrieNode(segHash(n.hash, utf8.encode(seg)));
    n.literal.set(seg, c);
  }
  return c;
}

function starChild(n: TrieNode): TrieNode {
  return (n.star ??= new TrieNode(starHash(n.hash)));
}

class Strings {
  private readonly chunks: Uint8Array[] = [];
  private readonly index = new Map<string, number>();
  length = 0;
  private readonly enc = new TextEncoder();
  add(s: string): { off: number; len: number } {
    const known = this.index.get(s);
    if (known !== undefined) return { off: known, len: Buffer.byteLength(s) };
    const bytes = this.enc.encode(s);
    const off = this.length;
    this.chunks.push(bytes);
    this.index.set(s, off);
    this.length += bytes.length;
    return { off, len: bytes.length };
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export interface ImageStats {
  nodes: number;
  edges: number;
  patterns: number;
  pairs: number;
  entries: number;
  rules: number;
  bytes: number;
}

/** Interns SPIFFE patterns: one id per distinct pattern, in first-use order. */
class Patterns {
  readonly root = new TrieNode(L.ID_SEED);
  readonly flags: number[] = [];
  /** Each pattern's key (layout.ts): where its pairs live in the pair table. */
  readonly keys: number[] = [];
  private readonly ids = new Map<string, number>();

  intern(p: SpiffePattern): number {
    const known = this.ids.get(p.text);
    if (known !== undefined) return known;
    const id = this.flags.length;
    this.ids.set(p.text, id);
    this.flags.push(0);
    let cur = child(this.root, p.trustDomain);
    for (const seg of p.segments) {
      if (seg.kind === "literal") cur = child(cur, seg.value);
      else if (seg.kind === "star") cur = starChild(cur);
      else {
        cur.glob = id;
        this.keys.push(globKey(cur.hash));
        return id;
      }
    }
    cur.end = id;
    this.keys.push(cur.hash);
    return id;
  }
}

interface Built {
  patterns: Patterns;
  operator: TrieNode;
  pairs: Array<{ src: number; dst: number; entries: Entry[] }>;
}

function build(set: PolicySet): Built {
  const patterns = new Patterns();
  const operator = new TrieNode(L.OP_SEED);
  const pairMap = new Map<number, Map<number, Entry[]>>();
  allRules(set).forEach((rule, index) => {
    if ("from" in rule) {
      const src = patterns.intern(rule.from);
      patterns.flags[src]! |= L.P_FROM;
      let row = pairMap.get(src);
      if (!row) pairMap.set(src, (row = new Map()));
      for (const t of rule.to) {
        const dst = patterns.intern(t.spiffe);
        let list = row.get(dst);
        if (!list) row.set(dst, (list = []));
        for (const p of t.ports) list.push({ ports: (p.lo | (p.hi << 16)) >>> 0, rule: index, flags: rule.action === "DENY" ? L.F_DENY : 0 });
      }
    } else {
      const flags = (rule.conditions.requireMFA ? L.F_REQUIRE_MFA : 0) | (rule.conditions.requireIncident ? L.F_REQUIRE_INCIDENT : 0);
      const roleNode = child(operator, rule.role);
      for (const t of rule.targets) {
        const svc = t.service === "*" ? starChild(roleNode) : child(roleNode, t.service);
        for (const a of t.actions) {
          const act = a === "*" ? starChild(svc) : child(svc, a);
          act.entries.push({ ports: 0, rule: index, flags });
        }
      }
    }
  });
  for (const p of set.policies) {
    if (p.kind !== "ServiceAccessPolicy") continue;
    for (const r of p.rollout) {
      const id = patterns.intern(r.destination);
      const mode = r.mode === "enforce" ? L.ROLLOUT_ENFORCE : L.ROLLOUT_OBSERVE;
      const cur = (patterns.flags[id]! >>> L.P_ROLLOUT_SHIFT) & L.P_ROLLOUT_MASK;
      if (mode > cur) patterns.flags[id] = (patterns.flags[id]! & ~(L.P_ROLLOUT_MASK << L.P_ROLLOUT_SHIFT)) | (mode << L.P_ROLLOUT_SHIFT);
    }
  }
  const pairs: Built["pairs"] = [];
  for (const [src, row] of pairMap) {
    for (const [dst, entries] of row) {
      pairs.push({ src, dst, entries });
      patterns.flags[src] = (patterns.flags[src]! | (partnerBit(patterns.keys[dst]!) << L.P_PARTNER_SHIFT)) >>> 0;
    }
  }
  return { patterns, operator, pairs };
}

/** Numbers nodes breadth-first in a deterministic order (literal edges sorted). */
function numberNodes(roots: TrieNode[]): TrieNode[] {
  const order: TrieNode[] = [];
  const queue = [...roots];
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    n.id = order.length;
    order.push(n);
    const keys = [...n.literal.keys()].sort();
    for (const k of keys) queue.push(n.literal.get(k)!);
    if (n.star) queue.push(n.star);
  }
  return order;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Smallest power of two keeping the load factor at or under MAX_LOAD. */
function capacityFor(n: number): number {
  let cap = 16;
  while (cap * L.MAX_LOAD_NUM < n * L.MAX_LOAD_DEN) cap *= 2;
  return cap;
}

export function buildImage(set: PolicySet): { image: Uint8Array; stats: ImageStats } {
  const { patterns, operator, pairs } = build(set);
  const nodes = numberNodes([patterns.root, operator]);
  const strings = new Strings();
  const rules = allRules(set);

  const edges: Array<{ parent: number; child: TrieNode; off: number; len: number }> = [];
  for (const n of nodes) {
    for (const k of [...n.literal.keys()].sort()) {
      const s = strings.add(k);
      edges.push({ parent: n.id, child: n.literal.get(k)!, off: s.off, len: s.len });
    }
  }
  const ruleStrs = rules.map((r) => strings.add(r.id));
  const blob = strings.concat();
  const edgeCap = capacityFor(edges.length);
  const pairCap = capacityFor(pairs.length);
  let entryCount = 0;
  for (const n of nodes) entryCount += n.entries.length;
  for (const p of pairs) if (p.entries.length > 1) entryCount += p.entries.length;
  if (rules.length > L.PR_VALUE_MASK || entryCount > L.PR_VALUE_MASK) throw new Error(`policy set too large: ${rules.length} rules, ${entryCount} entries (limit ${L.PR_VALUE_MASK})`);

  const nodesOff = L.IMAGE_HEADER_SIZE;
  const edgesOff = align(nodesOff + nodes.length * L.NODE_SIZE, 16);
  const pairsOff = align(edgesOff + edgeCap * L.SLOT_SIZE, 16);
  const entriesOff = align(pairsOff + pairCap * L.PAIR_SIZE, 16);
  const patternsOff = align(entriesOff + entryCount * L.ENTRY_SIZE, 16);
  const rulesOff = align(patternsOff + patterns.flags.length * L.PATTERN_SIZE, 16);
  const stringsOff = align(rulesOff + rules.length * L.RULE_SIZE, 16);
  const total = align(stringsOff + blob.length, 16);

  const image = new Uint8Array(total);
  const dv = new DataView(image.buffer);
  const u32 = (off: number, v: number): void => dv.setUint32(off, v >>> 0, true);

  u32(L.H_MAGIC, L.IMAGE_MAGIC);
  u32(L.H_VERSION, L.FORMAT_VERSION);
  u32(L.H_NODE_COUNT, nodes.length);
  u32(L.H_NODES_OFF, nodesOff);
  u32(L.H_EDGE_CAP, edgeCap);
  u32(L.H_EDGES_OFF, edgesOff);
  u32(L.H_PAIR_CAP, pairCap);
  u32(L.H_PAIRS_OFF, pairsOff);
  u32(L.H_ENTRY_COUNT, entryCount);
  u32(L.H_ENTRIES_OFF, entriesOff);
  u32(L.H_PATTERN_COUNT, patterns.flags.length);
  u32(L.H_PATTERNS_OFF, patternsOff);
  u32(L.H_RULE_COUNT, rules.length);
  u32(L.H_RULES_OFF, rulesOff);
  u32(L.H_STRINGS_LEN, blob.length);
  u32(L.H_STRINGS_OFF, stringsOff);
  u32(L.H_ID_ROOT, patterns.root.id);
  u32(L.H_OPERATOR_ROOT, operator.id);
  u32(L.H_TOTAL_LEN, total);

  let entryIndex = 0;
  const putEntry = (at: number, e: Entry): void => {
    u32(at + L.E_PORTS, e.ports);
    u32(at + L.E_RULE, e.rule);
    u32(at + L.E_FLAGS, e.flags);
  };
  const putEntries = (list: readonly Entry[]): number => {
    const start = entryIndex;
    for (const e of list) putEntry(entriesOff + entryIndex++ * L.ENTRY_SIZE, e);
    return start;
  };
  for (const n of nodes) {
    const o = nodesOff + n.id * L.NODE_SIZE;
    u32(o + L.N_STAR, n.star ? n.star.id : L.NONE);
    u32(o + L.N_GLOB, n.glob);
    u32(o + L.N_END, n.end);
    u32(o + L.N_ENTRY_START, putEntries(n.entries));
    u32(o + L.N_ENTRY_COUNT, n.entries.length);
  }

  for (let s = 0; s < edgeCap; s++) u32(edgesOff + s * L.SLOT_SIZE + L.S_PARENT, L.NONE);
  for (const e of edges) {
    let slot = e.child.hash & (edgeCap - 1);
    while (dv.getUint32(edgesOff + slot * L.SLOT_SIZE + L.S_PARENT, true) !== L.NONE) slot = (slot + 1) & (edgeCap - 1);
    const so = edgesOff + slot * L.SLOT_SIZE;
    u32(so + L.S_PARENT, e.parent);
    u32(so + L.S_CHILD, e.child.id);
    u32(so + L.S_STR_OFF, e.off);
    u32(so + L.S_STR_LEN, e.len);
    image.set(blob.subarray(e.off, e.off + Math.min(8, e.len)), so + L.S_PREFIX);
    u32(so + L.S_END, e.child.end);
    u32(so + L.S_END_FLAGS, e.child.end === L.NONE ? 0 : patterns.flags[e.child.end]!);
  }

  for (let s = 0; s < pairCap; s++) u32(pairsOff + s * L.PAIR_SIZE + L.PR_SRC, L.NONE);
  for (const p of pairs) {
    let slot = pairHash(patterns.keys[p.src]!, patterns.keys[p.dst]!) & (pairCap - 1);
    while (dv.getUint32(pairsOff + slot * L.PAIR_SIZE + L.PR_SRC, true) !== L.NONE) slot = (slot + 1) & (pairCap - 1);
    const so = pairsOff + slot * L.PAIR_SIZE;
    u32(so + L.PR_SRC, p.src);
    u32(so + L.PR_DST, p.dst);
    if (p.entries.length === 1) {
      const e = p.entries[0]!;
      u32(so + L.PR_A, e.ports);
      u32(so + L.PR_B, e.rule | (e.flags & L.F_DENY ? L.PR_DENY : 0));
    } else {
      u32(so + L.PR_A, putEntries(p.entries));
      u32(so + L.PR_B, L.PR_MANY | p.entries.length);
    }
  }

  patterns.flags.forEach((f, i) => u32(patternsOff + i * L.PATTERN_SIZE, f));
  ruleStrs.forEach((s, i) => {
    u32(rulesOff + i * L.RULE_SIZE + L.R_STR_OFF, s.off);
    u32(rulesOff + i * L.RULE_SIZE + L.R_STR_LEN, s.len);
  });
  image.set(blob, stringsOff);
  return {
    image,
    stats: { nodes: nodes.length, edges: edges.length, patterns: patterns.flags.length, pairs: pairs.length, entries: entryCount, rules: rules.length, bytes: total },
  };
}
