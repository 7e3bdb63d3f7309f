// A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1, as the API
// reference describes them): does this set of policies admit a TCP connection from pod A to
// pod B on a port, on both A's egress and B's ingress side. Written for the tests; it
// implements what the mirror emits and refuses (throws on) what it does not model.
import type { NetworkPolicy } from "../../compiler/netpol/types.js";

export interface Namespace {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface Pod {
  /** The cluster the pod runs in; pods of other clusters are only seen by IP. */
  readonly cluster: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ip: string;
}

export interface ClusterView {
  /** The cluster the policies are applied to. */
  readonly cluster: string;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly policies: readonly NetworkPolicy[];
}

type Selector = NonNullable<NetworkPolicy["spec"]>["podSelector"];
type Spec = NonNullable<NetworkPolicy["spec"]>;
type Peer = NonNullable<NonNullable<Spec["ingress"]>[number]["from"]>[number];
type Port = NonNullable<NonNullable<Spec["ingress"]>[number]["ports"]>[number];

export function selectorMatches(sel: Selector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case "In":
        if (!has || !(e.values ?? []).includes(val!)) return false;
        break;
      case "NotIn":
        if (has && (e.values ?? []).includes(val!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  }
  return true;
}

function ipv4(ip: string): number {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function cidrContains(cidr: string, ip: string): boolean {
  const [base, bits] = cidr.split("/");
  const n = Number(bits);
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  return ((ipv4(base!) & mask) >>> 0) === ((ipv4(ip) & mask) >>> 0);
}

function policyTypes(spec: Spec): string[] {
  if (spec.policyTypes && spec.policyTypes.length > 0) return spec.policyTypes;
  return spec.egress && spec.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

/** `policyNs` is the namespace of the policy holding the peer (bare podSelector = that namespace). */
function peerMatches(view: ClusterView, peer: Peer, policyNs: string, other: Pod): boolean {
  if (peer.ipBlock) {
    if (!cidrContains(peer.ipBlock.cidr, other.ip)) return false;
    return !(peer.ipBlock.except ?? []).some((c) => cidrContains(c, other.ip));
  }
  if (!peer.podSelector && !peer.namespaceSelector) throw new Error("empty NetworkPolicyPeer");
  // Selectors only ever name pods of this cluster.
  if (other.cluster !== view.cluster) return false;
  if (peer.namespaceSelector) {
    const ns = view.namespaces.get(other.namespace);
    if (!ns || !selectorMatches(peer.namespaceSelector, ns.labels)) return false;
  } else if (other.namespace !== policyNs) return false;
  return peer.podSelector ? selectorMatches(peer.podSelector, other.labels) : true;
}

function portMatches(ports: readonly Port[] | undefined, port: number): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? "TCP") !== "TCP") return false;
    if (p.port === undefined) return true;
    if (typeof p.port === "string") throw new Error("named ports are not modelled");
    return p.endPort === undefined ? port === p.port : port >= p.port && port <= p.endPort;
  });
}

function side(view: ClusterView, self: Pod, other: Pod, port: number, direction: "Ingress" | "Egress"): boolean {
  // Pods of another cluster are governed by that cluster's policies, not these.
  if (self.cluster !== view.cluster) return true;
  const selecting = view.policies.filter(
    (p) => p.metadata?.namespace === self.namespace && p.spec && policyTypes(p.spec).includes(direction) && selectorMatches(p.spec.podSelector, self.labels),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) => {
    const rules = direction === "Ingress" ? (p.spec!.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) : (p.spec!.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    return rules.some(
      (r) => portMatches(r.ports, port) && (!r.peers || r.peers.length === 0 || r.peers.some((peer) => peerMatches(view, peer, p.metadata!.namespace!, other))),
    );
  });
}

/** True when both the source's egress and the destination's ingress admit the TCP connection. */
export function admits(view: ClusterView, src: Pod, dst: Pod, port: number): boolean {
  return side(view, src, dst, port, "Egress") && side(view, dst, src, port, "Ingress");
}
