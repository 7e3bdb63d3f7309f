// What the agent reports about the tunnels at one instant: per peer cluster whether it is up
// (a handshake younger than the bound), the handshake's age and the bytes; per cluster the
// age of its key pair. Pure: device state, document and clock in, observation out.
import type { WireGuardMesh } from "../../compiler/mesh/model.js";
import type { DesiredDevice } from "./desired.js";
import type { DeviceState } from "./device.js";

/** WireGuard's Reject-After-Time: past it a session's keys are unusable without a new handshake. */
export const DEFAULT_PEER_UP_BOUND_MS = 180_000;

export interface PeerObservation {
  readonly cluster: string;
  readonly up: boolean;
  /** Seconds since the latest handshake; Infinity when there was none. */
  readonly handshakeAgeSeconds: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

export interface Observation {
  readonly interfaceUp: boolean;
  readonly peers: readonly PeerObservation[];
  readonly keyAges: ReadonlyArray<{ readonly cluster: string; readonly seconds: number }>;
}

export function observe(desired: DesiredDevice | null, mesh: WireGuardMesh | null, device: DeviceState | null, nowMs: number, boundMs: number): Observation {
  const byKey = new Map((device?.peers ?? []).map((p) => [p.publicKey, p]));
  const peers = (desired?.peers ?? []).map((spec): PeerObservation => {
    const p = byKey.get(spec.publicKey);
    const last = p?.lastHandshakeMs ?? 0;
    const age = last > 0 ? Math.max(0, nowMs - last) / 1000 : Infinity;
    return { cluster: spec.cluster, up: device !== null && last > 0 && age * 1000 < boundMs, handshakeAgeSeconds: age, rxBytes: p?.rxBytes ?? 0, txBytes: p?.txBytes ?? 0 };
  });
  const keyAges = (mesh?.clusters ?? []).map((c) => ({ cluster: c.name, seconds: Math.max(0, nowMs - c.keyCreatedMs) / 1000 }));
  return { interfaceUp: device !== null, peers, keyAges };
}
