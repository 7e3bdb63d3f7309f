// An evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), written for the
// tests from the Kubernetes documentation alone, one rule per function, each citing where the
// documentation says it (paraphrased; semantics.test.ts checks it on the documentation's own
// examples):
//   [C §…]  Concepts, "Network Policies":
//           https://kubernetes.io/docs/concepts/services-networking/network-policies/
//   [A …]   API reference, networking.k8s.io/v1 field descriptions (NetworkPolicySpec, …;
//           kubernetes-models ships the same text in its type definitions)
//   [L §…]  Concepts, "Labels and Selectors":
//           https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
// The question it answers: does this set of policies, applied to one cluster, let a connection
// from one endpoint to another through, on a port and protocol? It does not know the mirror.
// Not modelled, and refused (throws) when met: named ports. Not modelled: traffic from a pod's
// own node (always allowed, [C] introduction; no node is an endpoint here) and the rewriting of
// addresses on the way ([C §Behavior of to and from selectors], ipBlock: implementation-defined;
// here an endpoint is seen with its own address).
import type { NetworkPolicy } from "../../compiler/netpol/types.js";

export type Protocol = "TCP" | "UDP" | "SCTP";

export interface Namespace {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface Pod {
  readonly kind?: "pod";
  /** The cluster the pod runs in; pods of other clusters are seen by these policies only by address. */
  readonly cluster: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ip: string;
}

/** An address outside every cluster (an upstream DNS server, the internet). */
export interface External {
  readonly kind: "external";
  readonly ip: string;
}

export type Endpoint = Pod | External;

export interface ClusterView {
  /** The cluster the policies are applied to. */
  readonly cluster: string;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly policies: readonly NetworkPolicy[];
}

type Spec = NonNullable<NetworkPolicy["spec"]>;
type Selector = Spec["podSelector"];
type Peer = NonNullable<NonNullable<Spec["ingress"]>[number]["from"]>[number];
type Port = NonNullable<NonNullable<Spec["ingress"]>[number]["ports"]>[number];
type Direction = "Ingress" | "Egress";

function isPod(e: Endpoint): e is Pod {
  return e.kind !== "external";
}

// ---- Label selectors ----

/**
 * [L §Set-based requirement] `In`: the label is present with one of the values; `NotIn`: the
 * label is absent, or present with none of the values; `Exists` / `DoesNotExist`: the key is
 * present / absent. [A LabelSelectorRequirement] these four are the only operators.
 */
function requirementHolds(op: string, key: string, values: readonly string[], labels: Readonly<Record<string, string>>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, key);
  switch (op) {
    case "In":
      return has && values.includes(labels[key]!);
    case "NotIn":
      return !has || !values.includes(labels[key]!);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
    default:
      throw new Error(`unknown selector operator ${op}`);
  }
}

/**
 * [A LabelSelector] matchLabels and matchExpressions are ANDed, and so are the requirements
 * within each; a matchLabels pair is the requirement `key In [value]`; an empty selector
 * matches every object.
 */
export function selectorMatches(sel: Selector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (!requirementHolds("In", k, [v], labels)) return false;
  for (const e of sel.matchExpressions ?? []) if (!requirementHolds(e.operator, e.key, e.values ?? [], labels)) return false;
  return true;
}

// ---- Addresses ----

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

// ---- Which policies apply to a pod ----

/**
 * [C §The NetworkPolicy resource, policyTypes] [A NetworkPolicySpec.policyTypes] Without
 * policyTypes, a policy is about Ingress always, and about Egress too when it has egress rules.
 */
export function policyTypesOf(spec: Spec): Direction[] {
  if (spec.policyTypes && spec.policyTypes.length > 0) return [...spec.policyTypes];
  return spec.egress && spec.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

/**
 * [C §Isolated and Non-isolated Pods] a policy selects pods of its own namespace only;
 * [C §The NetworkPolicy resource, podSelector] [A NetworkPolicySpec.podSelector] those its
 * podSelector matches, every pod of the namespace when it is empty.
 */
function selects(p: NetworkPolicy, pod: Pod, view: ClusterView): boolean {
  return pod.cluster === view.cluster && p.metadata?.namespace === pod.namespace && p.spec !== undefined && selectorMatches(p.spec.podSelector, pod.labels);
}

/**
 * [C §Isolated and Non-isolated Pods] [A NetworkPolicySpec.ingress/egress] a pod is isolated
 * in a direction when some policy selects it and is about that direction; the policies that
 * make it so are the ones whose rules count.
 */
function isolating(view: ClusterView, pod: Pod, direction: Direction): NetworkPolicy[] {
  return view.policies.filter((p) => selects(p, pod, view) && policyTypesOf(p.spec!).includes(direction));
}

// ---- Rules ----

/**
 * [C §Behavior of to and from selectors] [A NetworkPolicyPeer]:
 * - podSelector alone: pods of the policy's own namespace that it matches;
 * - namespaceSelector alone: every pod of the namespaces it matches (an empty one: all namespaces);
 * - both in one entry: pods the podSelector matches, in the namespaces the namespaceSelector matches;
 * - ipBlock (never with the others): addresses in cidr and in none of except [A IPBlock].
 * Selectors name pods of this cluster; others are seen only by address.
 */
function peerMatches(view: ClusterView, peer: Peer, policyNs: string, other: Endpoint): boolean {
  if (peer.ipBlock) {
    if (peer.podSelector || peer.namespaceSelector) throw new Error("an ipBlock peer has no selectors [A NetworkPolicyPeer.ipBlock]");
    if (!cidrContains(peer.ipBlock.cidr, other.ip)) return false;
    return !(peer.ipBlock.except ?? []).some((c) => cidrContains(c, other.ip));
  }
  if (!peer.podSelector && !peer.namespaceSelector) throw new Error("an empty NetworkPolicyPeer");
  if (!isPod(other) || other.cluster !== view.cluster) return false;
  if (peer.namespaceSelector) {
    const ns = view.namespaces.get(other.namespace);
    if (!ns || !selectorMatches(peer.namespaceSelector, ns.labels)) return false;
  } else if (other.namespace !== policyNs) return false;
  return peer.podSelector ? selectorMatches(peer.podSelector, other.labels) : true;
}

/**
 * [A NetworkPolicyPort] protocol defaults to TCP; without port, every port of the protocol;
 * with endPort, port..endPort inclusive. Named ports are not modelled.
 */
function portMatches(p: Port, port: number, protocol: Protocol): boolean {
  if ((p.protocol ?? "TCP") !== protocol) return false;
  if (p.port === undefined) return true;
  if (typeof p.port === "string") throw new Error("named ports are not modelled");
  return p.endPort === undefined ? port === p.port : port >= p.port && port <= p.endPort;
}

/**
 * [C §The NetworkPolicy resource, ingress/egress] a rule lets through what matches both its
 * peers and its ports; [A NetworkPolicyIngressRule, NetworkPolicyEgressRule] an empty or missing
 * peer list matches every peer, an empty or missing port list every port.
 */
function ruleMatches(view: ClusterView, peers: readonly Peer[] | undefined, ports: readonly Port[] | undefined, policyNs: string, other: Endpoint, port: number, protocol: Protocol): boolean {
  const portOk = !ports || ports.length === 0 || ports.some((p) => portMatches(p, port, protocol));
  const peerOk = !peers || peers.length === 0 || peers.some((peer) => peerMatches(view, peer, policyNs, other));
  return portOk && peerOk;
}

/**
 * One end's verdict. [C §Isolated and Non-isolated Pods] a pod no policy isolates in this
 * direction lets everything through; an isolated one lets through what at least one rule of
 * one of its isolating policies matches: policies add up, order does not matter. Endpoints
 * outside this cluster are not governed by these policies.
 */
function side(view: ClusterView, self: Endpoint, other: Endpoint, port: number, protocol: Protocol, direction: Direction): boolean {
  if (!isPod(self) || self.cluster !== view.cluster) return true;
  const policies = isolating(view, self, direction);
  if (policies.length === 0) return true;
  return policies.some((p) => {
    const ns = p.metadata!.namespace!;
    const rules = direction === "Ingress" ? (p.spec!.ingress ?? []).map((r) => [r.from, r.ports] as const) : (p.spec!.egress ?? []).map((r) => [r.to, r.ports] as const);
    return rules.some(([peers, ports]) => ruleMatches(view, peers, ports, ns, other, port, protocol));
  });
}

function samePod(a: Endpoint, b: Endpoint): boolean {
  return isPod(a) && isPod(b) && a.cluster === b.cluster && a.ip === b.ip;
}

/**
 * [C §Isolated and Non-isolated Pods] a connection between two endpoints needs the source's
 * egress and the destination's ingress to allow it; [C introduction] a pod cannot block access
 * to itself.
 */
export function admits(view: ClusterView, src: Endpoint, dst: Endpoint, port: number, protocol: Protocol = "TCP"): boolean {
  if (samePod(src, dst)) return true;
  return side(view, src, dst, port, protocol, "Egress") && side(view, dst, src, port, protocol, "Ingress");
}
