// A policy as disjoint "boxes" of workload flows: source cluster x namespace x service
// account, destination cluster x namespace x service account, TCP ports. ALLOW boxes minus
// DENY boxes is computed exactly (each subtraction splits a box into at most seven), which
// is what DENY-overrides-ALLOW means on workload IDs. Only afterwards is anything projected
// onto what a NetworkPolicy can say (a remote cluster becomes its whole CIDR), so carving
// before projecting never widens more than the projection itself does.
import type { PortRange } from "../model.js";
import { type Dim, intersectDim, intersectPorts, isEmptyDim, subtractDim, subtractPorts } from "./dims.js";

export interface Box {
  readonly srcCluster: Dim;
  readonly dstCluster: Dim;
  readonly srcNs: Dim;
  readonly srcSa: Dim;
  readonly dstNs: Dim;
  readonly dstSa: Dim;
  readonly ports: readonly PortRange[];
  /** The rule the box comes from, and the index of its rule target (the caller's grant). */
  readonly rule: string;
  readonly origin: number;
}

type DimKey = "srcCluster" | "dstCluster" | "srcNs" | "srcSa" | "dstNs" | "dstSa";
const DIMS: readonly DimKey[] = ["srcCluster", "dstCluster", "srcNs", "srcSa", "dstNs", "dstSa"];

export function intersects(a: Box, b: Box): boolean {
  for (const k of DIMS) if (isEmptyDim(intersectDim(a[k], b[k]))) return false;
  return intersectPorts(a.ports, b.ports).length > 0;
}

/** a \ d as disjoint boxes; [a] when they do not meet. */
export function subtractBox(a: Box, d: Box): Box[] {
  if (!intersects(a, d)) return [a];
  const out: Box[] = [];
  let cur: Box = a;
  // Peel off, dimension by dimension, the part of `cur` outside `d`; what is left at the end
  // is a ∩ d, which is dropped.
  const portsOut = subtractPorts(cur.ports, d.ports);
  if (portsOut.length > 0) out.push({ ...cur, ports: portsOut });
  cur = { ...cur, ports: intersectPorts(cur.ports, d.ports) };
  for (const k of DIMS) {
    const outside = subtractDim(cur[k], d[k]);
    if (!isEmptyDim(outside)) out.push({ ...cur, [k]: outside });
    cur = { ...cur, [k]: intersectDim(cur[k], d[k]) };
  }
  return out;
}

/** Every ALLOW box minus every DENY box. */
export function carve(allows: readonly Box[], denies: readonly Box[]): { boxes: Box[]; carvedBy: Map<string, Set<string>> } {
  let boxes: Box[] = [...allows];
  const carvedBy = new Map<string, Set<string>>();
  for (const d of denies) {
    const next: Box[] = [];
    for (const b of boxes) {
      if (!intersects(b, d)) {
        next.push(b);
        continue;
      }
      let set = carvedBy.get(b.rule);
      if (!set) carvedBy.set(b.rule, (set = new Set()));
      set.add(d.rule);
      next.push(...subtractBox(b, d));
    }
    boxes = next;
  }
  return { boxes, carvedBy };
}
