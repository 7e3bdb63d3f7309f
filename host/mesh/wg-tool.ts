// The `wg` program as a backend: `wg show <iface> dump` to read, `wg set` to change. It works
// for kernel and userspace devices alike. The private key goes through stdin (/dev/stdin),
// so it is in no argument list (ps) and no file of ours.
import type { DeviceChange, DeviceState, PeerState, WgBackend } from "./device.js";
import { run } from "./exec.js";

function num(text: string | undefined): number {
  const n = Number(text);
  return Number.isFinite(n) ? n : 0;
}

/** Parses `wg show <iface> dump`: the interface line, then one line per peer (tab-separated). */
export function parseDump(text: string): DeviceState {
  const [head, ...rest] = text.split("\n").filter((l) => l.length > 0);
  const h = (head ?? "").split("\t");
  const peers = rest.map((line): PeerState => {
    const f = line.split("\t");
    return {
      publicKey: f[0]!,
      endpoint: f[2] === "(none)" ? null : f[2]!,
      allowedIPs: f[3] === "(none)" || !f[3] ? [] : f[3].split(","),
      lastHandshakeMs: num(f[4]) * 1000,
      rxBytes: num(f[5]),
      txBytes: num(f[6]),
      persistentKeepalive: f[7] === "off" ? 0 : num(f[7]),
    };
  });
  return { publicKey: h[1] === "(none)" || !h[1] ? null : h[1], listenPort: num(h[2]), peers };
}

export function setArgs(iface: string, c: DeviceChange): string[] {
  const args = ["set", iface];
  if (c.listenPort !== undefined) args.push("listen-port", String(c.listenPort));
  if (c.privateKey !== undefined) args.push("private-key", c.privateKey.file);
  for (const k of c.removePeers) args.push("peer", k, "remove");
  for (const p of c.upsertPeers) {
    args.push("peer", p.publicKey);
    if (p.endpoint !== undefined) args.push("endpoint", p.endpoint);
    args.push("persistent-keepalive", p.persistentKeepalive === 0 ? "off" : String(p.persistentKeepalive));
    args.push("allowed-ips", p.allowedIPs.join(","));
  }
  return args;
}

export function wgToolBackend(iface: string, wg = "wg"): WgBackend {
  return {
    name: "wg",
    async get() {
      const r = await run(wg, ["show", iface, "dump"]);
      if (r.code === 0) return parseDump(r.stdout);
      if (/No such device|Unable to access interface/i.test(r.stderr)) return null;
      throw new Error(`wg show ${iface} dump: exit ${r.code}: ${r.stderr.trim()}`);
    },
    async set(change) {
      const r = await run(wg, setArgs(iface, change));
      if (r.code !== 0) throw new Error(`wg set ${iface}: exit ${r.code}: ${r.stderr.trim()}`);
    },
  };
}
