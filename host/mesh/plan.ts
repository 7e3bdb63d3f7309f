// The change that takes a device from what it holds to what the mesh declares, touching only
// what differs: a peer whose key, routes, endpoint and keepalive already match is left alone,
// so adding or removing one cluster never interrupts the sessions with the others. A peer
// whose key rotated is a different peer to WireGuard: the old one is removed, the new added.
import { parseCidr } from "../../compiler/mesh/cidr.js";
import type { DesiredDevice } from "./desired.js";
import type { DeviceChange, DeviceState, PeerChange } from "./device.js";

function canonicalSet(cidrs: readonly string[]): string {
  return cidrs
    .map((c) => {
      const r = parseCidr(c);
      return r.ok ? r.cidr.text : c;
    })
    .sort()
    .join(",");
}

export interface PlanInput {
  readonly desired: DesiredDevice;
  readonly current: DeviceState;
  /** The private key to install when the device's differs; null while the key file does not match the document. */
  readonly privateKey: { readonly key: string; readonly file: string } | null;
  /** Endpoints resolved to ip:port, by peer cluster (a DNS name resolves here, the UAPI takes addresses only). */
  readonly endpoints: ReadonlyMap<string, string>;
}

export function planChange({ desired, current, privateKey, endpoints }: PlanInput): DeviceChange {
  const byKey = new Map(current.peers.map((p) => [p.publicKey, p]));
  const wanted = new Set(desired.peers.map((p) => p.publicKey));
  const upsertPeers: PeerChange[] = [];
  for (const p of desired.peers) {
    const endpoint = endpoints.get(p.cluster);
    const have = byKey.get(p.publicKey);
    const same =
      have !== undefined &&
      canonicalSet(have.allowedIPs) === canonicalSet(p.allowedIPs) &&
      have.persistentKeepalive === p.persistentKeepalive &&
      (endpoint === undefined || have.endpoint === endpoint);
    if (!same) upsertPeers.push({ publicKey: p.publicKey, allowedIPs: p.allowedIPs, persistentKeepalive: p.persistentKeepalive, ...(endpoint !== undefined ? { endpoint } : {}) });
  }
  return {
    ...(privateKey !== null && current.publicKey !== desired.publicKey ? { privateKey } : {}),
    ...(current.listenPort !== desired.listenPort ? { listenPort: desired.listenPort } : {}),
    removePeers: current.peers.filter((p) => !wanted.has(p.publicKey)).map((p) => p.publicKey),
    upsertPeers,
  };
}
