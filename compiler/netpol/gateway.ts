// The WireGuard gateway's NetworkPolicy (docs/mesh.md "NetworkPolicy"): the gateway pods of
// one cluster accept UDP on their listen port from the peer gateways' endpoints only, send
// UDP only to them, and carry only the pod traffic the ZT policy lets cross clusters: from
// the local pods that may reach a peer cluster, to the local pods a peer cluster may reach,
// on those rules' ports. Kept apart from generate.ts (the pod mirror) on purpose.
import type { MeshCluster, WireGuardMesh } from "../mesh/model.js";
import type { PolicySet, PortRange, ServiceAccessPolicy } from "../model.js";
import { type Dim, dimHas, dimKey, intersectPorts, normalizePorts, unionPorts } from "./dims.js";
import { projectPattern } from "./project.js";
import { type LabelSelector, type NetworkPolicyPort, selectorFor, tcpPorts } from "./selectors.js";
import type { NetpolOptions, NetpolWarning, NetworkPolicy } from "./types.js";
import { type ObjectNotes, renderYaml } from "./yaml.js";
import type { Diagnostic } from "../diagnostics.js";
import { MESH_KIND, parseMesh } from "../mesh/parse.js";
import type { CompanionDocument } from "../parse.js";

export const GATEWAY_POLICY_NAME = "zt-wireguard-gateway";
const ALL_TCP: readonly PortRange[] = [{ lo: 1, hi: 65535 }];
const ANYWHERE = ["0.0.0.0/0", "::/0"];

interface PodPeer {
  readonly ns: Dim;
  readonly sa: Dim;
  ports: PortRange[];
  readonly rules: Set<string>;
}

export interface GatewayPolicies {
  readonly objects: NetworkPolicy[];
  readonly notes: ObjectNotes[];
  readonly warnings: NetpolWarning[];
}

function hostBlock(host: string): string | null {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) return `${host}/32`;
  if (host.includes(":")) return `${host}/128`;
  return null;
}

/** Where a peer's UDP comes from and goes to: its endpoint address, or anywhere (with why). */
function peerBlocks(peer: MeshCluster): { blocks: string[]; why: string | null } {
  if (!peer.endpoint) return { blocks: ANYWHERE, why: `peer ${peer.name} declares no endpoint (it roams or sits behind NAT): UDP is admitted from any address` };
  const block = hostBlock(peer.endpoint.host);
  if (!block) return { blocks: ANYWHERE, why: `peer ${peer.name}'s endpoint ${peer.endpoint.text} is a DNS name, which a NetworkPolicy cannot name: UDP is admitted from any address` };
  return { blocks: [block], why: null };
}

function podPeer(peers: Map<string, PodPeer>, ns: Dim, sa: Dim, ports: readonly PortRange[], rule: string): void {
  const key = `${dimKey(ns)}|${dimKey(sa)}`;
  const p = peers.get(key);
  if (p) {
    p.ports = unionPorts(p.ports, ports);
    p.rules.add(rule);
  } else peers.set(key, { ns, sa, ports: normalizePorts(ports), rules: new Set([rule]) });
}

function selectorPair(o: NetpolOptions, p: PodPeer, gatewayNs: string): { namespaceSelector?: LabelSelector; podSelector: LabelSelector } {
  const podSelector = selectorFor(o.podLabel, p.sa);
  if (p.ns.kind === "in" && p.ns.values.length === 1 && p.ns.values[0] === gatewayNs) return { podSelector };
  return { namespaceSelector: selectorFor(o.namespaceLabel, p.ns), podSelector };
}

/** The gateway object for `o.cluster`, when that cluster is in the mesh. */
export function gatewayPolicies(mesh: WireGuardMesh, set: PolicySet, o: NetpolOptions): GatewayPolicies {
  const self = mesh.clusters.find((c) => c.name === o.cluster);
  if (!self) return { objects: [], notes: [], warnings: [] };
  const peers = mesh.clusters.filter((c) => c.name !== self.name);
  const warnings: NetpolWarning[] = [];
  const at = self.at;
  const warn = (message: string, effect: NetpolWarning["effect"]): void => {
    warnings.push({ code: "cross-cluster", effect, rule: `${mesh.name}/${self.name}`, at, message, scope: [] });
  };

  // The pods that send into the tunnel (egress rules to a peer cluster) and receive from it.
  const senders = new Map<string, PodPeer>();
  const receivers = new Map<string, PodPeer>();
  const crossesToPeer = (cluster: Dim): boolean => peers.some((p) => dimHas(cluster, p.name));
  for (const policy of set.policies) {
    if (policy.kind !== "ServiceAccessPolicy") continue;
    for (const rule of (policy as ServiceAccessPolicy).rules) {
      // A DENY cannot be carved out of the tunnel's admission; the destination pods' own
      // objects (generate.ts) still carry it.
      if (rule.action !== "ALLOW") continue;
      const src = projectPattern(rule.from, o.trustDomain);
      for (const target of rule.to) {
        const dst = projectPattern(target.spiffe, o.trustDomain);
        if (src.kind !== "workloads" || dst.kind !== "workloads") continue;
        const ports = intersectPorts(normalizePorts(target.ports), ALL_TCP);
        if (ports.length === 0) continue;
        if (dimHas(src.cluster, self.name) && crossesToPeer(dst.cluster)) podPeer(senders, src.ns, src.sa, ports, rule.id);
        if (dimHas(dst.cluster, self.name) && crossesToPeer(src.cluster)) podPeer(receivers, dst.ns, dst.sa, ports, rule.id);
      }
    }
  }

  const ns = mesh.gateway.namespace;
  const ingress: NonNullable<NonNullable<NetworkPolicy["spec"]>["ingress"]> = [];
  const egress: NonNullable<NonNullable<NetworkPolicy["spec"]>["egress"]> = [];
  const ingressNotes: string[][] = [];
  const egressNotes: string[][] = [];
  for (const peer of peers) {
    const { blocks, why } = peerBlocks(peer);
    if (why) warn(why, "widens");
    ingress.push({ from: blocks.map((cidr) => ({ ipBlock: { cidr } })), ports: [{ protocol: "UDP", port: self.listenPort }] });
    ingressNotes.push([`WireGuard from the ${peer.name} gateway${peer.endpoint ? ` (${peer.endpoint.text})` : ""}`]);
    const out: NetworkPolicyPort[] = peer.endpoint ? [{ protocol: "UDP", port: peer.endpoint.port }] : [{ protocol: "UDP" }];
    egress.push({ to: blocks.map((cidr) => ({ ipBlock: { cidr } })), ports: out });
    egressNotes.push([`WireGuard to the ${peer.name} gateway${peer.endpoint ? ` (${peer.endpoint.text})` : " (wherever it roams)"}`]);
  }
  for (const s of [...senders.values()].sort((a, b) => (dimKey(a.ns) + dimKey(a.sa) < dimKey(b.ns) + dimKey(b.sa) ? -1 : 1))) {
    ingress.push({ from: [selectorPair(o, s, ns)], ports: tcpPorts(s.ports) });
    ingressNotes.push([`tunnel users: ${[...s.rules].sort().join(", ")}`]);
  }
  for (const r of [...receivers.values()].sort((a, b) => (dimKey(a.ns) + dimKey(a.sa) < dimKey(b.ns) + dimKey(b.sa) ? -1 : 1))) {
    egress.push({ to: [selectorPair(o, r, ns)], ports: tcpPorts(r.ports) });
    egressNotes.push([`into this cluster through the tunnel: ${[...r.rules].sort().join(", ")}`]);
  }
  ingress.push({ from: [{ namespaceSelector: {} }], ports: [{ protocol: "TCP", port: mesh.gateway.metricsPort }] });
  ingressNotes.push([`zt mesh agent's /metrics and /healthz (zt_wireguard_peer_up), from inside the cluster`]);

  const podSelector = { matchLabels: { ...mesh.gateway.podLabels } };
  const metadata = (direction: string) => ({ name: `${GATEWAY_POLICY_NAME}-${direction}`, namespace: ns, labels: { "app.kubernetes.io/managed-by": "zt" } });
  const about = `${self.name}'s WireGuard gateway (mesh ${mesh.name}, ${mesh.source})`;
  return {
    objects: [
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: metadata("ingress"), spec: { podSelector, policyTypes: ["Ingress"], ingress } },
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: metadata("egress"), spec: { podSelector, policyTypes: ["Egress"], egress } },
    ],
    notes: [
      { header: [`${about}: WireGuard from the peer gateways only, and the local pods that may use the tunnel`], rules: ingressNotes },
      { header: [`${about}: WireGuard to the peer gateways only, and into this cluster only what the ZT policy lets cross`], rules: egressNotes },
    ],
    warnings,
  };
}

/** The validated mesh documents among the loaded companions (their errors, if any). */
export function meshDocuments(companions: readonly CompanionDocument[]): { meshes: WireGuardMesh[]; errors: Diagnostic[] } {
  const meshes: WireGuardMesh[] = [];
  const errors: Diagnostic[] = [];
  for (const c of companions) {
    if (c.kind !== MESH_KIND) continue;
    const r = parseMesh(c);
    if (r.ok) meshes.push(r.mesh);
    else errors.push(...r.errors);
  }
  return { meshes, errors };
}

/** --remote-cidr defaults: a peer cluster's allowedIPs (its pod CIDR) where no flag names that cluster. */
export function meshRemoteCidrs(meshes: readonly WireGuardMesh[], cluster: string, given: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  const out: Record<string, string[]> = Object.fromEntries(Object.entries(given).map(([k, v]) => [k, [...v]]));
  for (const m of meshes) {
    if (!m.clusters.some((c) => c.name === cluster)) continue;
    for (const c of m.clusters) if (c.name !== cluster && !(c.name in given) && c.allowedIPs.length > 0) (out[c.name] ??= []).push(...c.allowedIPs.map((a) => a.text));
  }
  return out;
}

/** The gateway objects of every mesh `cluster` belongs to, as YAML documents to append. */
export function gatewayOutput(meshes: readonly WireGuardMesh[], set: PolicySet, o: NetpolOptions): { objects: NetworkPolicy[]; warnings: NetpolWarning[]; yaml: string } {
  const parts = meshes.map((m) => gatewayPolicies(m, set, o));
  const objects = parts.flatMap((p) => p.objects);
  const yaml = objects.length === 0 ? "" : renderYaml([], objects, parts.flatMap((p) => p.notes)).replace(/^\n/, "");
  return { objects, warnings: parts.flatMap((p) => p.warnings), yaml };
}
