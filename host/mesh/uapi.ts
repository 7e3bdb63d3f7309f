// The WireGuard cross-platform UAPI (wireguard.com/xplatform): key=value lines over the unix
// socket a userspace implementation (wireguard-go) serves at /var/run/wireguard/<iface>.sock.
// Keys travel in hex; the reply ends with errno=N and an empty line.
import { createConnection } from "node:net";
import { join } from "node:path";
import type { DeviceChange, DeviceState, PeerState, WgBackend } from "./device.js";
import { keyFromHex, keyToHex, publicKeyOf } from "./keys.js";

export const UAPI_DIR = "/var/run/wireguard";

export function uapiSocket(iface: string, dir = UAPI_DIR): string {
  return join(dir, `${iface}.sock`);
}

/** One request/response exchange; resolves with the reply's lines (errno checked). */
function exchange(path: string, request: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let reply = "";
    sock.setEncoding("utf8");
    sock.once("error", reject);
    sock.on("data", (chunk: string) => {
      reply += chunk;
      if (!reply.endsWith("\n\n")) return;
      sock.end();
      const lines = reply.trimEnd().split("\n");
      const errno = lines.pop();
      if (errno !== "errno=0") reject(new Error(`UAPI ${request.slice(0, 5)}: ${errno ?? "no errno"}`));
      else resolve(lines);
    });
    sock.once("end", () => {
      if (!reply.endsWith("\n\n")) reject(new Error("UAPI: the socket closed before the reply ended"));
    });
    sock.write(request);
  });
}

interface PeerDraft {
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  sec: number;
  nsec: number;
  rx: number;
  tx: number;
  keepalive: number;
}

export function parseGet(lines: readonly string[]): DeviceState {
  let publicKey: string | null = null;
  let listenPort = 0;
  const peers: PeerDraft[] = [];
  let peer: PeerDraft | null = null;
  for (const line of lines) {
    const eq = line.indexOf("=");
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (k === "private_key") publicKey = /^0+$/.test(v) ? null : publicKeyOf(keyFromHex(v));
    else if (k === "listen_port") listenPort = Number(v);
    else if (k === "public_key") peers.push((peer = { publicKey: keyFromHex(v), endpoint: null, allowedIPs: [], sec: 0, nsec: 0, rx: 0, tx: 0, keepalive: 0 }));
    else if (!peer) continue;
    else if (k === "endpoint") peer.endpoint = v;
    else if (k === "allowed_ip") peer.allowedIPs.push(v);
    else if (k === "last_handshake_time_sec") peer.sec = Number(v);
    else if (k === "last_handshake_time_nsec") peer.nsec = Number(v);
    else if (k === "rx_bytes") peer.rx = Number(v);
    else if (k === "tx_bytes") peer.tx = Number(v);
    else if (k === "persistent_keepalive_interval") peer.keepalive = Number(v);
  }
  return {
    publicKey,
    listenPort,
    peers: peers.map(
      (p): PeerState => ({
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        allowedIPs: p.allowedIPs,
        lastHandshakeMs: p.sec * 1000 + Math.floor(p.nsec / 1e6),
        rxBytes: p.rx,
        txBytes: p.tx,
        persistentKeepalive: p.keepalive,
      }),
    ),
  };
}

export function setRequest(c: DeviceChange): string {
  const lines = ["set=1"];
  if (c.privateKey !== undefined) lines.push(`private_key=${keyToHex(c.privateKey.key)}`);
  if (c.listenPort !== undefined) lines.push(`listen_port=${c.listenPort}`);
  for (const k of c.removePeers) lines.push(`public_key=${keyToHex(k)}`, "remove=true");
  for (const p of c.upsertPeers) {
    lines.push(`public_key=${keyToHex(p.publicKey)}`);
    if (p.endpoint !== undefined) lines.push(`endpoint=${p.endpoint}`);
    lines.push(`persistent_keepalive_interval=${p.persistentKeepalive}`, "replace_allowed_ips=true", ...p.allowedIPs.map((a) => `allowed_ip=${a}`));
  }
  return lines.join("\n") + "\n\n";
}

export function uapiBackend(iface: string, dir = UAPI_DIR): WgBackend {
  const path = uapiSocket(iface, dir);
  return {
    name: "uapi",
    async get() {
      try {
        return parseGet(await exchange(path, "get=1\n\n"));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ECONNREFUSED") return null;
        throw e;
      }
    },
    async set(change) {
      await exchange(path, setRequest(change));
    },
  };
}
