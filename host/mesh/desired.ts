// One gateway's WireGuard configuration as the mesh document declares it: the interface and
// one peer per other cluster. The pure input of render.ts and of the agent's reconciler.
import type { MeshCluster, MeshEndpoint, WireGuardMesh } from "../../compiler/mesh/model.js";
import { peersOf, routedBy } from "../../compiler/mesh/model.js";

export interface PeerSpec {
  readonly cluster: string;
  readonly publicKey: string;
  /** The peer's mesh address (/32 or /128) first, then the networks behind it. */
  readonly allowedIPs: readonly string[];
  readonly endpoint: MeshEndpoint | null;
  /** Seconds; 0 = off. This gateway's own setting, applied to every peer. */
  readonly persistentKeepalive: number;
}

export interface DesiredDevice {
  readonly mesh: string;
  readonly cluster: string;
  readonly publicKey: string;
  readonly privateKeyFile: string;
  readonly listenPort: number;
  /** The interface address with the mesh prefix (wg-quick's Address), e.g. 10.10.0.1/24. */
  readonly address: string;
  readonly peers: readonly PeerSpec[];
  /** Routes through the interface beyond the mesh CIDR: the networks behind the peers. */
  readonly routes: readonly string[];
}

export function clusterOf(mesh: WireGuardMesh, name: string): MeshCluster | null {
  return mesh.clusters.find((c) => c.name === name) ?? null;
}

export function desiredDevice(mesh: WireGuardMesh, self: MeshCluster): DesiredDevice {
  const peers = peersOf(mesh, self.name).map((p) => ({
    cluster: p.name,
    publicKey: p.publicKey,
    allowedIPs: routedBy(p),
    endpoint: p.endpoint,
    persistentKeepalive: self.persistentKeepalive,
  }));
  return {
    mesh: mesh.name,
    cluster: self.name,
    publicKey: self.publicKey,
    privateKeyFile: self.privateKeyFile,
    listenPort: self.listenPort,
    address: `${self.address}/${mesh.meshCIDR.prefix}`,
    peers,
    routes: peersOf(mesh, self.name).flatMap((p) => p.allowedIPs.map((a) => a.text)),
  };
}
