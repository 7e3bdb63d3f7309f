// Property: what `zt mesh render` writes for a gateway is the document. Rendered configs are
// parsed back (our reading of the wg config format), and applied to a real wireguard-go
// device with `wg setconf` and read back with `wg showconf`; both must give exactly the
// document's view of that gateway: its key pair and port, one peer per other cluster with
// that cluster's key, mesh address and networks, endpoint, and this gateway's keepalive.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCidr, parseIp, formatIp } from "../../compiler/mesh/cidr.js";
import { meshFromText } from "../../compiler/mesh/load.js";
import { routedBy, type WireGuardMesh } from "../../compiler/mesh/model.js";
import { desiredDevice } from "../../host/mesh/desired.js";
import { publicKeyOf } from "../../host/mesh/keys.js";
import { renderConfig } from "../../host/mesh/render.js";
import { meshArbitrary } from "./arbitraries.js";
import { meshDoc } from "./helpers.js";
import { Lab } from "./lab.js";

interface ParsedConfig {
  privateKey: string | null;
  listenPort: number | null;
  peers: Array<{ publicKey: string; allowedIPs: string[]; endpoint: string | null; keepalive: number }>;
}

/** The wg config format: [Interface] and [Peer] sections of `Key = value`, # comments. */
function parseConfig(text: string): ParsedConfig {
  const out: ParsedConfig = { privateKey: null, listenPort: null, peers: [] };
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    if (line.startsWith("[")) {
      section = line;
      if (section === "[Peer]") out.peers.push({ publicKey: "", allowedIPs: [], endpoint: null, keepalive: 0 });
      continue;
    }
    const [k, v] = line.split(/\s*=\s*(.*)/s) as [string, string];
    const peer = out.peers[out.peers.length - 1];
    if (section === "[Interface]" && k === "PrivateKey") out.privateKey = v;
    else if (section === "[Interface]" && k === "ListenPort") out.listenPort = Number(v);
    else if (peer && k === "PublicKey") peer.publicKey = v;
    else if (peer && k === "AllowedIPs") peer.allowedIPs.push(...v.split(",").map((s) => s.trim()).filter(Boolean));
    else if (peer && k === "Endpoint") peer.endpoint = v;
    else if (peer && k === "PersistentKeepalive") peer.keepalive = v === "off" ? 0 : Number(v);
  }
  return out;
}

function canonicalEndpoint(text: string): string {
  const m = /^\[(.+)\]:(\d+)$/.exec(text);
  if (!m) return text;
  const ip = parseIp(m[1]!)!;
  return `[${formatIp(ip.family, ip.value)}]:${m[2]}`;
}

function canonicalSet(cidrs: readonly string[]): string[] {
  return cidrs.map((c) => (parseCidr(c) as { ok: true; cidr: { text: string } }).cidr.text).sort();
}

/** The document's view of gateway `self`, in the shape parseConfig gives. */
function expected(mesh: WireGuardMesh, self: string) {
  const me = mesh.clusters.find((c) => c.name === self)!;
  return {
    publicKey: me.publicKey,
    listenPort: me.listenPort,
    peers: mesh.clusters
      .filter((c) => c.name !== self)
      .map((c) => ({ publicKey: c.publicKey, allowedIPs: canonicalSet(routedBy(c)), endpoint: c.endpoint ? canonicalEndpoint(c.endpoint.text) : null, keepalive: me.persistentKeepalive }))
      .sort((x, y) => (x.publicKey < y.publicKey ? -1 : 1)),
  };
}

function actual(cfg: ParsedConfig) {
  return {
    publicKey: cfg.privateKey === null ? null : publicKeyOf(cfg.privateKey),
    listenPort: cfg.listenPort,
    peers: cfg.peers
      .map((p) => ({ publicKey: p.publicKey, allowedIPs: canonicalSet(p.allowedIPs), endpoint: p.endpoint === null ? null : canonicalEndpoint(p.endpoint), keepalive: p.keepalive }))
      .sort((x, y) => (x.publicKey < y.publicKey ? -1 : 1)),
  };
}

const property = (apply: (config: string) => string) =>
  fc.property(meshArbitrary, fc.nat(), (g, pick) => {
    const text = meshDoc(g.meshCIDR, g.clusters);
    const loaded = meshFromText(text, "generated.yaml");
    if (!loaded.ok) throw new Error(`generator made an invalid mesh:\n${loaded.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join("\n")}\n${text}`);
    const self = loaded.mesh.clusters[pick % loaded.mesh.clusters.length]!;
    const config = renderConfig(desiredDevice(loaded.mesh, self), { format: "setconf", privateKey: g.privateKeys[self.name]! });
    expect(actual(parseConfig(apply(config)))).toEqual(expected(loaded.mesh, self.name));
  });

describe("rendered configs are the document", () => {
  it("parse back to the document (every generated mesh, every gateway)", () => {
    fc.assert(
      property((c) => c),
      { numRuns: 150 },
    );
  });

  describe("through a real device: wg setconf, then wg showconf", () => {
    let lab: Lab;
    let dir: string;
    beforeAll(async () => {
      lab = Lab.create("p");
      dir = mkdtempSync(join(tmpdir(), "zt-mesh-showconf-"));
      const wgo = spawn("ip", ["netns", "exec", lab.a.ns, "wireguard-go", "-f", lab.a.iface], { stdio: "ignore" });
      for (let i = 0; i < 500 && spawnSync("wg", ["show", lab.a.iface]).status !== 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(wgo.exitCode).toBeNull();
    });
    afterAll(() => {
      lab?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("round-trips", { timeout: 120_000 }, () => {
      const file = join(dir, "config");
      fc.assert(
        property((config) => {
          writeFileSync(file, config, { mode: 0o600 });
          const set = spawnSync("wg", ["setconf", lab.a.iface, file], { encoding: "utf8" });
          if (set.status !== 0) throw new Error(`wg setconf: ${set.stderr}\n${config}`);
          const show = spawnSync("wg", ["showconf", lab.a.iface], { encoding: "utf8" });
          if (show.status !== 0) throw new Error(`wg showconf: ${show.stderr}`);
          return show.stdout;
        }),
        { numRuns: 60 },
      );
    });
  });
});
