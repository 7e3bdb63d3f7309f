// The NetworkPolicy mirror's inputs and outputs. Objects are typed with kubernetes-models'
// interfaces (type-only import: nothing of that package is loaded at run time).
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { PortRange, SourceRef } from "../model.js";

export type NetworkPolicy = INetworkPolicy;

/** A peer every workload may reach whatever the ZT policy says (DNS, the engine itself). */
export interface InfraEgress {
  /** Shown in the comment of the zt-infra-egress object. */
  readonly name: string;
  readonly namespace: string;
  readonly podLabels: Readonly<Record<string, string>>;
  readonly ports: ReadonlyArray<{ readonly protocol: "TCP" | "UDP"; readonly port: number }>;
}

export interface NetpolOptions {
  /** The cluster whose objects are emitted (the first path segment of a workload SPIFFE ID). */
  readonly cluster: string;
  /** The trust domain of this cluster's workloads; patterns in other trust domains map to no pod. */
  readonly trustDomain: string;
  /** Pod label carrying the service account name (default `app`). */
  readonly podLabel: string;
  /** Namespace label carrying the namespace name (default `kubernetes.io/metadata.name`). */
  readonly namespaceLabel: string;
  /**
   * Pod CIDRs of the other clusters, as routed through the WireGuard gateway. Cross-cluster
   * traffic can only be admitted by CIDR; a cluster with no entry is not admitted at all.
   */
  readonly remoteCidrs: Readonly<Record<string, readonly string[]>>;
  /**
   * Egress every pod of a governed namespace keeps (emitted as `zt-infra-egress`), and, where
   * the target's namespace is itself governed, ingress to it from every pod of the cluster
   * (`zt-infra-ingress-<name>`): isolating the ZT engine would cut every sidecar off it.
   */
  readonly infraEgress: readonly InfraEgress[];
  /**
   * Namespaces never isolated: no default deny there, no object at all (kube-system: isolating it
   * would cut every pod's DNS and CoreDNS's upstream). Rules naming them are mirrored on the other end.
   */
  readonly systemNamespaces: readonly string[];
}

export const DEFAULT_POD_LABEL = "app";
/** Always system namespaces; `--system-namespace` adds more. */
export const DEFAULT_SYSTEM_NAMESPACES: readonly string[] = ["kube-system"];
export const DEFAULT_NAMESPACE_LABEL = "kubernetes.io/metadata.name";

/** kube-dns (CoreDNS keeps the k8s-app=kube-dns label) and the ZT engine's policy port. */
export const DEFAULT_INFRA_EGRESS: readonly InfraEgress[] = [
  {
    name: "dns",
    namespace: "kube-system",
    podLabels: { "k8s-app": "kube-dns" },
    ports: [
      { protocol: "UDP", port: 53 },
      { protocol: "TCP", port: 53 },
    ],
  },
  {
    name: "zt-policy-engine",
    namespace: "hanzo",
    podLabels: { app: "zt-policy-engine" },
    ports: [{ protocol: "TCP", port: 8054 }],
  },
];

export function netpolOptions(o: Partial<NetpolOptions> & Pick<NetpolOptions, "cluster" | "trustDomain">): NetpolOptions {
  return {
    cluster: o.cluster,
    trustDomain: o.trustDomain,
    podLabel: o.podLabel ?? DEFAULT_POD_LABEL,
    namespaceLabel: o.namespaceLabel ?? DEFAULT_NAMESPACE_LABEL,
    remoteCidrs: o.remoteCidrs ?? {},
    infraEgress: o.infraEgress ?? DEFAULT_INFRA_EGRESS,
    systemNamespaces: [...new Set([...DEFAULT_SYSTEM_NAMESPACES, ...(o.systemNamespaces ?? [])])].sort(),
  };
}

export type NetpolWarningCode =
  /** Cross-cluster traffic admitted by the remote cluster's whole pod CIDR. */
  | "cross-cluster"
  /** Cross-cluster traffic to or from a cluster with no CIDR: not admitted. */
  | "cluster-unmapped"
  /** A DENY that would carve a hole in a cross-cluster (CIDR) allowance. */
  | "deny-not-mirrored"
  /** A `**` pattern: mirrored for workload IDs only. */
  | "globstar"
  /** An identity that names no pod under the mapping (shape, label syntax). */
  | "unmappable-identity"
  /** A pattern in another trust domain. */
  | "foreign-trust-domain"
  /** Observe-mode destinations: the objects enforce what ZT only logs. */
  | "observe-rollout"
  /** The objects admit TCP only; ZT decides by port whatever the protocol. */
  | "udp-not-mirrored"
  /** A system namespace named by the policy: never isolated, mirrored on the other end only. */
  | "system-namespace";

export type Protocol = "TCP" | "UDP" | "SCTP";

/**
 * A set of flows, as SPIFFE patterns (patternMatches semantics), ports and protocols. The
 * cluster exclusions narrow the source/destination pattern further (a `*` cluster minus these).
 */
export interface FlowScope {
  readonly source: string;
  readonly destination: string;
  readonly ports: readonly PortRange[];
  /** The protocols concerned; absent: any protocol. */
  readonly protocols?: readonly Protocol[];
  readonly sourceClustersExcept?: readonly string[];
  readonly destinationClustersExcept?: readonly string[];
}

export interface NetpolWarning {
  readonly code: NetpolWarningCode;
  /** widens: admits flows ZT denies; narrows: drops flows ZT allows; none: informational. */
  readonly effect: "widens" | "narrows" | "none";
  /** The ZT rule id, e.g. `hanzo-core-policy/rule-1`. */
  readonly rule: string;
  readonly at: SourceRef;
  readonly message: string;
  /** The flows this warning widens or narrows (empty when no pod flow is affected). */
  readonly scope: readonly FlowScope[];
}

export interface NetpolResult {
  readonly objects: NetworkPolicy[];
  readonly warnings: NetpolWarning[];
  readonly yaml: string;
  /** Namespaces that get objects; pods elsewhere are not isolated by this output. */
  readonly namespaces: string[];
}

export function formatNetpolWarning(w: NetpolWarning): string {
  return `${w.at.file}:${w.at.line}:${w.at.col}: warning: [${w.code}] ${w.message}`;
}
