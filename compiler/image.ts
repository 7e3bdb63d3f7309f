// Validated model -> trie -> compact binary image (layout: assembly/layout.ts).
// Three tries share one node table and one edge hash table:
//   service:  src trust domain / src segments... END dst trust domain / dst segments... END -> entries
//   rollout:  dst trust domain / dst segments... END -> entries (mode)
//   operator: role / service|* / action|* -> entries (rule, conditions)
import * as L from "../assembly/layout.js";
import { allRules, type PolicySet } from "./model.js";
import type { SpiffePattern } from "./spiffe.js";

interface Entry {
  ports: number;
  rule: number;
  flags: number;
}

class TrieNode {
  readonly literal = new Map<string, TrieNode>();
  star: TrieNode | null = null;
  glob: TrieNode | null = null;
  end: TrieNode | null = null;
  readonly entries: Entry[] = [];
  id = -1;
}

function child(n: TrieNode, seg: string): TrieNode {
  let c = n.literal.get(seg);
  if (!c) {
    c = new TrieNode();
    n.literal.set(seg, c);
  }
  return c;
}

/** Walks/creates the path of a SPIFFE pattern from `n`; returns the node after its END. */
function insertPattern(n: TrieNode, p: SpiffePattern): TrieNode {
  let cur = child(n, p.trustDomain);
  for (const seg of p.segments) {
    if (seg.kind === "literal") cur = child(cur, seg.value);
    else if (seg.kind === "star") cur = cur.star ??= new TrieNode();
    else return (cur.glob ??= new TrieNode());
  }
  return (cur.end ??= new TrieNode());
}

export function hashSegment(parent: number, bytes: Uint8Array, off: number, len: number): number {
  let h = Math.imul((L.FNV_OFFSET ^ parent) >>> 0, L.FNV_PRIME);
  for (let i = 0; i < len; i++) h = Math.imul(h ^ bytes[off + i]!, L.FNV_PRIME);
  return h >>> 0;
}

class Strings {
  private readonly chunks: Uint8Array[] = [];
  private readonly index = new Map<string, number>();
  length = 0;
  private readonly enc = new TextEncoder();
  add(s: string): { off: number; len: number } {
    const bytes = this.enc.encode(s);
    const known = this.index.get(s);
    if (known !== undefined) return { off: known, len: bytes.length };
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
  entries: number;
  rules: number;
  bytes: number;
}

function buildTries(set: PolicySet): { service: TrieNode; operator: TrieNode; rollout: TrieNode } {
  const service = new TrieNode();
  const operator = new TrieNode();
  const rollout = new TrieNode();
  allRules(set).forEach((rule, index) => {
    if ("from" in rule) {
      const dstRoot = insertPattern(service, rule.from);
      for (const t of rule.to) {
        const leaf = insertPattern(dstRoot, t.spiffe);
        for (const p of t.ports) leaf.entries.push({ ports: (p.lo | (p.hi << 16)) >>> 0, rule: index, flags: rule.action === "DENY" ? L.F_DENY : 0 });
      }
    } else {
      const flags = (rule.conditions.requireMFA ? L.F_REQUIRE_MFA : 0) | (rule.conditions.requireIncident ? L.F_REQUIRE_INCIDENT : 0);
      const roleNode = child(operator, rule.role);
      for (const t of rule.targets) {
        const svc = t.service === "*" ? (roleNode.star ??= new TrieNode()) : child(roleNode, t.service);
        for (const a of t.actions) {
          const act = a === "*" ? (svc.star ??= new TrieNode()) : child(svc, a);
          act.entries.push({ ports: 0, rule: index, flags });
        }
      }
    }
  });
  for (const p of set.policies) {
    if (p.kind !== "ServiceAccessPolicy") continue;
    for (const r of p.rollout) {
      const leaf = insertPattern(rollout, r.destination);
      leaf.entries.push({ ports: 0, rule: 0, flags: r.mode === "enforce" ? L.ROLLOUT_ENFORCE : L.ROLLOUT_OBSERVE });
    }
  }
  return { service, operator, rollout };
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
    if (n.glob) queue.push(n.glob);
    if (n.end) queue.push(n.end);
  }
  return order;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function buildImage(set: PolicySet): { image: Uint8Array; stats: ImageStats } {
  const { service, operator, rollout } = buildTries(set);
  const nodes = numberNodes([service, operator, rollout]);
  const strings = new Strings();
  const rules = allRules(set);
  const ruleStrs = rules.map((r) => strings.add(r.id));

  let edgeCount = 0;
  for (const n of nodes) edgeCount += n.literal.size;
  let cap = 16;
  while (cap < edgeCount * 2) cap *= 2;

  // Edge strings first, so slot data can point at them.
  const edges: Array<{ parent: number; child: number; off: number; len: number }> = [];
  for (const n of nodes) {
    for (const k of [...n.literal.keys()].sort()) {
      const s = strings.add(k);
      edges.push({ parent: n.id, child: n.literal.get(k)!.id, off: s.off, len: s.len });
    }
  }
  const blob = strings.concat();

  let entryCount = 0;
  for (const n of nodes) entryCount += n.entries.length;

  const nodesOff = L.IMAGE_HEADER_SIZE;
  const hashOff = align(nodesOff + nodes.length * L.NODE_SIZE, 16);
  const entriesOff = align(hashOff + cap * L.SLOT_SIZE, 16);
  const rulesOff = align(entriesOff + entryCount * L.ENTRY_SIZE, 16);
  const stringsOff = align(rulesOff + rules.length * L.RULE_SIZE, 16);
  const total = align(stringsOff + blob.length, 16);

  const image = new Uint8Array(total);
  const dv = new DataView(image.buffer);
  const u32 = (off: number, v: number): void => dv.setUint32(off, v >>> 0, true);

  u32(L.H_MAGIC, L.IMAGE_MAGIC);
  u32(L.H_VERSION, L.FORMAT_VERSION);
  u32(L.H_NODE_COUNT, nodes.length);
  u32(L.H_NODES_OFF, nodesOff);
  u32(L.H_HASH_CAP, cap);
  u32(L.H_HASH_OFF, hashOff);
  u32(L.H_ENTRY_COUNT, entryCount);
  u32(L.H_ENTRIES_OFF, entriesOff);
  u32(L.H_RULE_COUNT, rules.length);
  u32(L.H_RULES_OFF, rulesOff);
  u32(L.H_STRINGS_LEN, blob.length);
  u32(L.H_STRINGS_OFF, stringsOff);
  u32(L.H_SERVICE_ROOT, service.id);
  u32(L.H_OPERATOR_ROOT, operator.id);
  u32(L.H_ROLLOUT_ROOT, rollout.id);
  u32(L.H_TOTAL_LEN, total);

  let entryIndex = 0;
  for (const n of nodes) {
    const o = nodesOff + n.id * L.NODE_SIZE;
    u32(o + L.N_STAR, n.star ? n.star.id : L.NONE);
    u32(o + L.N_GLOB, n.glob ? n.glob.id : L.NONE);
    u32(o + L.N_END, n.end ? n.end.id : L.NONE);
    u32(o + L.N_ENTRY_START, entryIndex);
    u32(o + L.N_ENTRY_COUNT, n.entries.length);
    u32(o + L.N_RESERVED, 0);
    for (const e of n.entries) {
      const eo = entriesOff + entryIndex * L.ENTRY_SIZE;
      u32(eo + L.E_PORTS, e.ports);
      u32(eo + L.E_RULE, e.rule);
      u32(eo + L.E_FLAGS, e.flags);
      entryIndex++;
    }
  }

  for (let s = 0; s < cap; s++) u32(hashOff + s * L.SLOT_SIZE + L.S_PARENT, L.NONE);
  const mask = cap - 1;
  for (const e of edges) {
    let slot = hashSegment(e.parent, blob, e.off, e.len) & mask;
    while (dv.getUint32(hashOff + slot * L.SLOT_SIZE + L.S_PARENT, true) !== L.NONE) slot = (slot + 1) & mask;
    const so = hashOff + slot * L.SLOT_SIZE;
    u32(so + L.S_PARENT, e.parent);
    u32(so + L.S_CHILD, e.child);
    u32(so + L.S_STR_OFF, e.off);
    u32(so + L.S_STR_LEN, e.len);
  }

  ruleStrs.forEach((s, i) => {
    u32(rulesOff + i * L.RULE_SIZE + L.R_STR_OFF, s.off);
    u32(rulesOff + i * L.RULE_SIZE + L.R_STR_LEN, s.len);
  });
  image.set(blob, stringsOff);
  return { image, stats: { nodes: nodes.length, edges: edgeCount, entries: entryCount, rules: rules.length, bytes: total } };
}
