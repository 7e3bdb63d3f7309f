// Dimension sets -> Kubernetes label selectors and ports (object names: names.ts).
import type { IIoK8sApiNetworkingV1NetworkPolicyPort as NetworkPolicyPort } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort";
import type { IIoK8sApiNetworkingV1NetworkPolicySpec as NetworkPolicySpec } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicySpec";
import type { PortRange } from "../model.js";
import type { Dim } from "./dims.js";

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
