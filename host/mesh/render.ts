// A gateway's configuration as text: `wg setconf` format (the device only) or wg-quick format
// (plus Address, and a PostUp that loads the private key from its file). The private key is
// written only when the caller passes it, which `zt mesh render` does only on an explicit flag.
import type { DesiredDevice } from "./desired.js";

export type RenderFormat = "setconf" | "wg-quick";

export interface RenderOptions {
  readonly format: RenderFormat;
  /** The private key to inline; omitted, the key stays in its file. */
  readonly privateKey?: string;
}

export function renderConfig(d: DesiredDevice, opts: RenderOptions): string {
  const lines: string[] = [`# ${d.cluster} gateway of WireGuard mesh ${d.mesh} (rendered by zt mesh render; public key ${d.publicKey})`, "[Interface]"];
  if (opts.privateKey !== undefined) lines.push(`PrivateKey = ${opts.privateKey}`);
  else lines.push(`# PrivateKey: not rendered; read at apply time from ${d.privateKeyFile}`);
  lines.push(`ListenPort = ${d.listenPort}`);
  if (opts.format === "wg-quick") {
    lines.push(`Address = ${d.address}`);
    if (opts.privateKey === undefined) lines.push(`PostUp = wg set %i private-key ${d.privateKeyFile}`);
  }
  for (const p of d.peers) {
    lines.push("", `# ${p.cluster}`, "[Peer]", `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIPs.join(", ")}`);
    if (p.endpoint) lines.push(`Endpoint = ${p.endpoint.text}`);
    if (p.persistentKeepalive > 0) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return lines.join("\n") + "\n";
}
