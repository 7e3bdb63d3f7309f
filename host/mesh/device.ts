// What a WireGuard device holds, and a change to it: the common language of the two ways to
// reach a device (uapi.ts, the userspace implementation's socket; wg-tool.ts, the `wg`
// program, which also speaks to kernel devices). The private key never appears in a state:
// a backend reports the device's public key instead.

export interface PeerState {
  readonly publicKey: string;
  /** ip:port ([ip]:port for IPv6), or null until the peer is known to be somewhere. */
  readonly endpoint: string | null;
  readonly allowedIPs: readonly string[];
  /** Unix time of the latest handshake in ms; 0 = never. */
  readonly lastHandshakeMs: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly persistentKeepalive: number;
}

export interface DeviceState {
  /** The public key of the device's private key, or null when it has none. */
  readonly publicKey: string | null;
  readonly listenPort: number;
  readonly peers: readonly PeerState[];
}

export interface PeerChange {
  readonly publicKey: string;
  /** Replaces the peer's allowed IPs (both backends replace, never append). */
  readonly allowedIPs: readonly string[];
  /** A resolved ip:port; undefined leaves the endpoint as it is (roaming). */
  readonly endpoint?: string;
  readonly persistentKeepalive: number;
}

export interface DeviceChange {
  /**
   * The new private key, only when the device's key must change: its text (base64) for the
   * UAPI, and the file it was read from for `wg set private-key FILE` (the key never passes
   * through an argument list or a file of ours).
   */
  readonly privateKey?: { readonly key: string; readonly file: string };
  readonly listenPort?: number;
  readonly removePeers: readonly string[];
  /** Peers to add, or to update in place (same public key: the session survives). */
  readonly upsertPeers: readonly PeerChange[];
}

export interface WgBackend {
  readonly name: "uapi" | "wg";
  /** The device's state, or null when the interface does not exist. */
  get(): Promise<DeviceState | null>;
  set(change: DeviceChange): Promise<void>;
}

export function isEmptyChange(c: DeviceChange): boolean {
  return c.privateKey === undefined && c.listenPort === undefined && c.removePeers.length === 0 && c.upsertPeers.length === 0;
}
