// Dimension sets -> Kubernetes label selectors, ports and object names.
import { createHash } from "node:crypto";
import type { IIoK8sApiNetworkingV1NetworkPolicyPort as NetworkPolicyPort } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort";
import type { IIoK8sApiNetworkingV1NetworkPolicySpec as NetworkPolicySpec } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicySpec";
import type { PortRange } from "../model.js";
import { type Dim, dimKey } from "./dims.js";

export type LabelSelector = NetworkPolicySpec["podSelector"];
export type { NetworkPolicyPort };

/**
 * `in [v]` -> matchLabels; `in [v1, v2]` -> In; `notIn E` -> Exists (+ NotIn E). Exists is
 * needed because NotIn alone also matches objects without the label, which have no
 * identity under the mapping and must not be admitted.
 */
export function selectorFor(label: string, d: Dim): LabelSelector {
  if (d.kind === "in") {
    if (d.values.length === 1) return { matchLabels: { [label]: d.values[0]! } };
    return { matchExpressions: [{ key: label, operator: "In", values: [...d.values] }] };
  }
  const exprs: NonNullable<LabelSelector["matchExpressions"]> = [{ key: label, operator: "Exists" }];
  if (d.values.length > 0) exprs.push({ key: label, operator: "NotIn", values: [...d.values] });
  return { matchExpressions: exprs };
}

/** TCP port ranges as NetworkPolicyPort entries (endPort for ranges). */
export function tcpPorts(ranges: readonly PortRange[]): NetworkPolicyPort[] {
  return ranges.map((r) => (r.lo === r.hi ? { protocol: "TCP", port: r.lo } : { protocol: "TCP", port: r.lo, endPort: r.hi }));
}

// metadata.name of a NetworkPolicy: an RFC 1123 subdomain.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

/**
 * `<sa>-ingress` / `<sa>-egress` for a single service account with a name Kubernetes
 * accepts (the seed's `postgres-ingress`); otherwise a stable hashed name.
 */
export function subjectName(direction: "ingress" | "egress", sa: Dim): string {
  if (sa.kind === "in" && sa.values.length === 1) {
    const name = `${sa.values[0]}-${direction}`;
    if (isDnsSubdomain(name)) return name;
  }
  const h = createHash("sha256").update(`${direction}|${dimKey(sa)}`).digest("hex").slice(0, 10);
  return `zt-${h}-${direction}`;
}
