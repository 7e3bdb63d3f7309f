// The WireGuardMesh document (docs/mesh.md): the clusters of the cross-cluster WireGuard mesh
// and their gateways. Public data only: each gateway's private key is referenced by the path
// of a file mounted from a KMS-backed Secret, never written into the document.
import type { SourceRef } from "../model.js";
import type { Cidr } from "./cidr.js";

export const MESH_KIND = "WireGuardMesh";
export const DEFAULT_LISTEN_PORT = 51820;
/** The seed's PersistentKeepalive. */
export const DEFAULT_KEEPALIVE = 25;
export const DEFAULT_GATEWAY_NAMESPACE = "hanzo";
export const DEFAULT_GATEWAY_LABELS: Readonly<Record<string, string>> = { app: "zt-wireguard-gateway" };
/** Where `zt mesh agent` serves /metrics (the Prometheus WireGuard exporters' port). */
export const DEFAULT_METRICS_PORT = 9586;

export interface MeshEndpoint {
  /** An IPv4 or IPv6 address, or a DNS name. */
  readonly host: string;
  readonly port: number;
  /** `host:port`, IPv6 in brackets (what wg and the UAPI take). */
  readonly text: string;
}

export interface MeshCluster {
  readonly name: string;
  /** The gateway's address inside the mesh CIDR. */
  readonly address: string;
  readonly addressFamily: 4 | 6;
  /** Null when the gateway is not reachable from outside (the peers learn it from its handshakes). */
  readonly endpoint: MeshEndpoint | null;
  readonly listenPort: number;
  readonly publicKey: string;
  /** When the current key pair was made (ISO 8601); the key-age metric and alert count from it. */
  readonly keyCreated: string;
  readonly keyCreatedMs: number;
  /** Where the gateway reads its private key (a Secret / CSI volume file). */
  readonly privateKeyFile: string;
  /** Networks behind this gateway (its pod CIDR); the peers route them here, with its address. */
  readonly allowedIPs: readonly Cidr[];
  /** Seconds between keepalives this gateway sends to its peers; 0 = off. */
  readonly persistentKeepalive: number;
  readonly at: SourceRef;
}

export interface WireGuardMesh {
  readonly name: string;
  readonly meshCIDR: Cidr;
  /** The gateway pods (for `zt netpol`): namespace, labels, and the agent's metrics port. */
  readonly gateway: { readonly namespace: string; readonly podLabels: Readonly<Record<string, string>>; readonly metricsPort: number };
  readonly clusters: readonly MeshCluster[];
  readonly source: string;
}

/** A cluster's peers as its gateway sees them: every other cluster of the mesh. */
export function peersOf(mesh: WireGuardMesh, cluster: string): MeshCluster[] {
  return mesh.clusters.filter((c) => c.name !== cluster);
}

/** What a peer routes to this cluster's gateway: its mesh address, then the networks behind it. */
export function routedBy(c: MeshCluster): string[] {
  return [`${c.address}/${c.addressFamily === 4 ? 32 : 128}`, ...c.allowedIPs.map((a) => a.text)];
}
