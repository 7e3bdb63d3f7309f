// SPIFFE pattern -> the set of Kubernetes workloads it names. A workload ID has exactly the
// seed's shape spiffe://<td>/<cluster>/<namespace>/<service-account>; the pod behind it is
// found by namespace label and pod label (options). `*` is "any value" in its position;
// `**` at position k is "any value" in positions k..2 (it also matches longer IDs, which
// name no pod). Everything else names no pod at all.
import type { PatternSegment, SpiffePattern } from "../spiffe.js";
import { ANY, type Dim, only } from "./dims.js";

export type Projection =
  | { readonly kind: "workloads"; readonly cluster: Dim; readonly ns: Dim; readonly sa: Dim; readonly globstar: boolean }
  | { readonly kind: "none"; readonly code: "unmappable-identity" | "foreign-trust-domain"; readonly reason: string };

// metadata.namespace and the kubernetes.io/metadata.name label value: an RFC 1123 label.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// A label value (the pod label carries the service account name).
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

export function isLabelValue(s: string): boolean {
  return s.length <= 63 && LABEL_VALUE.test(s);
}

function dimOf(seg: PatternSegment | undefined): Dim {
  if (seg === undefined || seg.kind !== "literal") return ANY;
  return only(seg.value);
}

export function projectPattern(p: SpiffePattern, trustDomain: string): Projection {
  if (p.trustDomain !== trustDomain) {
    return { kind: "none", code: "foreign-trust-domain", reason: `trust domain "${p.trustDomain}" is not this cluster's ("${trustDomain}")` };
  }
  const segs = p.segments;
  const g = segs.findIndex((s) => s.kind === "globstar");
  if (g >= 3) {
    return { kind: "none", code: "unmappable-identity", reason: "it only matches IDs with more than three path segments, which name no pod" };
  }
  if (g < 0 && segs.length !== 3) {
    return { kind: "none", code: "unmappable-identity", reason: `it has ${segs.length} path segment(s); a workload ID has three (<cluster>/<namespace>/<service-account>)` };
  }
  // Positions at or after a `**` are open.
  const at = (i: number): PatternSegment | undefined => (g >= 0 && i >= g ? undefined : segs[i]);
  const cluster = dimOf(at(0));
  const ns = dimOf(at(1));
  const sa = dimOf(at(2));
  if (ns.kind === "in" && !isDnsLabel(ns.values[0]!)) {
    return { kind: "none", code: "unmappable-identity", reason: `namespace "${ns.values[0]}" is not a valid Kubernetes namespace name` };
  }
  if (sa.kind === "in" && !isLabelValue(sa.values[0]!)) {
    return { kind: "none", code: "unmappable-identity", reason: `service account "${sa.values[0]}" is not a valid label value` };
  }
  return { kind: "workloads", cluster, ns, sa, globstar: g >= 0 };
}

/** The pattern's text with its cluster segment set to `cluster` (for warning scopes). */
export function withCluster(p: SpiffePattern, cluster: string): string {
  const segs = p.segments.map((s) => (s.kind === "literal" ? s.value : s.kind === "star" ? "*" : "**"));
  if (segs.length === 0) return `spiffe://${p.trustDomain}/${cluster}/**`;
  if (segs[0] === "**") return `spiffe://${p.trustDomain}/${cluster}/**`;
  segs[0] = cluster;
  return `spiffe://${p.trustDomain}/${segs.join("/")}`;
}
