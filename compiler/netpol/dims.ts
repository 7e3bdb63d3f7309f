// Set algebra for one dimension of a flow (a namespace, a service account, a cluster) and
// for TCP port ranges. A SPIFFE pattern segment is either one literal or `*` (anything),
// and ALLOW minus DENY only ever produces "these values" or "anything but these values",
// so two finite forms are closed under intersection and difference. This is what lets a
// DENY carve an exact hole out of a wildcard ALLOW using In / NotIn label selectors.
import type { PortRange } from "../model.js";

/** `in`: exactly these values. `notIn`: any value except these (notIn [] = any value). */
export type Dim = { readonly kind: "in"; readonly values: readonly string[] } | { readonly kind: "notIn"; readonly values: readonly string[] };

export const ANY: Dim = { kind: "notIn", values: [] };

function uniqSorted(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

export function only(...values: string[]): Dim {
  return { kind: "in", values: uniqSorted(values) };
}

export function notIn(values: Iterable<string>): Dim {
  return { kind: "notIn", values: uniqSorted(values) };
}

export function isEmptyDim(d: Dim): boolean {
  return d.kind === "in" && d.values.length === 0;
}

export function dimHas(d: Dim, v: string): boolean {
  return d.kind === "in" ? d.values.includes(v) : !d.values.includes(v);
}

export function intersectDim(a: Dim, b: Dim): Dim {
  if (a.kind === "in" && b.kind === "in") return only(...a.values.filter((v) => b.values.includes(v)));
  if (a.kind === "in") return only(...a.values.filter((v) => !b.values.includes(v)));
  if (b.kind === "in") return only(...b.values.filter((v) => !a.values.includes(v)));
  return notIn([...a.values, ...b.values]);
}

export function subtractDim(a: Dim, b: Dim): Dim {
  if (a.kind === "in" && b.kind === "in") return only(...a.values.filter((v) => !b.values.includes(v)));
  if (a.kind === "in") return only(...a.values.filter((v) => b.values.includes(v)));
  if (b.kind === "in") return notIn([...a.values, ...b.values]);
  return only(...b.values.filter((v) => !a.values.includes(v)));
}

export function dimKey(d: Dim): string {
  return `${d.kind}:${d.values.join(",")}`;
}

export function describeDim(d: Dim): string {
  if (d.kind === "in") return d.values.length === 1 ? d.values[0]! : `{${d.values.join(", ")}}`;
  return d.values.length === 0 ? "*" : `* except {${d.values.join(", ")}}`;
}

// ---- Port ranges: sorted, disjoint, non-adjacent, inclusive ----

export type Ports = readonly PortRange[];

export function normalizePorts(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].filter((r) => r.lo <= r.hi).sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.lo <= last.hi + 1) out[out.length - 1] = { lo: last.lo, hi: Math.max(last.hi, r.hi) };
    else out.push({ lo: r.lo, hi: r.hi });
  }
  return out;
}

export function intersectPorts(a: Ports, b: Ports): PortRange[] {
  const out: PortRange[] = [];
  for (const x of a) for (const y of b) {
    const lo = Math.max(x.lo, y.lo);
    const hi = Math.min(x.hi, y.hi);
    if (lo <= hi) out.push({ lo, hi });
  }
  return normalizePorts(out);
}

export function subtractPorts(a: Ports, b: Ports): PortRange[] {
  let cur: PortRange[] = normalizePorts(a);
  for (const y of b) {
    const next: PortRange[] = [];
    for (const x of cur) {
      if (y.hi < x.lo || y.lo > x.hi) {
        next.push(x);
        continue;
      }
      if (x.lo < y.lo) next.push({ lo: x.lo, hi: y.lo - 1 });
      if (x.hi > y.hi) next.push({ lo: y.hi + 1, hi: x.hi });
    }
    cur = next;
  }
  return normalizePorts(cur);
}

export function unionPorts(a: Ports, b: Ports): PortRange[] {
  return normalizePorts([...a, ...b]);
}

export function portsKey(p: Ports): string {
  return p.map((r) => (r.lo === r.hi ? `${r.lo}` : `${r.lo}-${r.hi}`)).join(",");
}

export function portsHave(p: Ports, port: number): boolean {
  return p.some((r) => port >= r.lo && port <= r.hi);
}
