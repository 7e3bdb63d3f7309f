// The pieces between the document and the device: the UAPI and `wg` dump formats, the plan
// that touches only what differs, the peer-up rule, and an agent whose interface is absent.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { meshFromText } from "../../compiler/mesh/load.js";
import { silentLogger } from "../../host/common/logger.js";
import { MeshAgent } from "../../host/mesh/agent.js";
import { desiredDevice } from "../../host/mesh/desired.js";
import type { DeviceState } from "../../host/mesh/device.js";
import { generateKeyPair, keyToHex, writePrivateKeyFile } from "../../host/mesh/keys.js";
import { planChange } from "../../host/mesh/plan.js";
import { observe } from "../../host/mesh/status.js";
import { parseGet, setRequest } from "../../host/mesh/uapi.js";
import { parseDump, setArgs } from "../../host/mesh/wg-tool.js";
import { meshDoc, metricValues } from "./helpers.js";

const A = generateKeyPair();
const B = generateKeyPair();
const C = generateKeyPair();

function mesh(extra = false) {
  const text = meshDoc("10.10.0.0/24", [
    { name: "a", address: "10.10.0.1", endpoint: "192.0.2.1:51820", publicKey: A.publicKey, keyCreated: "2026-01-01", privateKeyFile: "/keys/a", allowedIPs: ["10.245.0.0/16"] },
    { name: "b", address: "10.10.0.2", endpoint: "192.0.2.2:51820", publicKey: B.publicKey, keyCreated: "2026-01-01", privateKeyFile: "/keys/b", allowedIPs: ["10.244.0.0/16"] },
    ...(extra ? [{ name: "c", address: "10.10.0.3", endpoint: "[2001:db8::3]:51820", publicKey: C.publicKey, keyCreated: "2026-03-01", privateKeyFile: "/keys/c" }] : []),
  ]);
  const r = meshFromText(text, "m.yaml");
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.mesh;
}

const deviceWithB: DeviceState = {
  publicKey: A.publicKey,
  listenPort: 51820,
  peers: [{ publicKey: B.publicKey, endpoint: "192.0.2.2:51820", allowedIPs: ["10.244.0.0/16", "10.10.0.2/32"], lastHandshakeMs: 1_000_000, rxBytes: 10, txBytes: 20, persistentKeepalive: 25 }],
};

describe("the device formats", () => {
  it("UAPI get -> state (the private key becomes its public key), set <- change", () => {
    const lines = [
      `private_key=${keyToHex(A.privateKey)}`,
      "listen_port=51820",
      `public_key=${keyToHex(B.publicKey)}`,
      "endpoint=192.0.2.2:51820",
      "last_handshake_time_sec=1000",
      "last_handshake_time_nsec=500000000",
      "tx_bytes=20",
      "rx_bytes=10",
      "persistent_keepalive_interval=25",
      "allowed_ip=10.244.0.0/16",
      "allowed_ip=10.10.0.2/32",
      "protocol_version=1",
    ];
    expect(parseGet(lines)).toEqual({ ...deviceWithB, peers: [{ ...deviceWithB.peers[0]!, lastHandshakeMs: 1_000_500 }] });
    expect(JSON.stringify(parseGet(lines))).not.toContain(A.privateKey);
    expect(parseGet(["private_key=" + "0".repeat(64), "listen_port=0"])).toEqual({ publicKey: null, listenPort: 0, peers: [] });
    expect(setRequest({ privateKey: { key: A.privateKey, file: "/k" }, listenPort: 1, removePeers: [C.publicKey], upsertPeers: [{ publicKey: B.publicKey, allowedIPs: ["10.10.0.2/32"], endpoint: "192.0.2.2:51820", persistentKeepalive: 0 }] })).toBe(
      [
        "set=1",
        `private_key=${keyToHex(A.privateKey)}`,
        "listen_port=1",
        `public_key=${keyToHex(C.publicKey)}`,
        "remove=true",
        `public_key=${keyToHex(B.publicKey)}`,
        "endpoint=192.0.2.2:51820",
        "persistent_keepalive_interval=0",
        "replace_allowed_ips=true",
        "allowed_ip=10.10.0.2/32",
      ].join("\n") + "\n\n",
    );
  });

  it("wg show dump -> state; wg set arguments carry the key file's path, never the key", () => {
    const dump = `${A.privateKey}\t${A.publicKey}\t51820\toff\n${B.publicKey}\t(none)\t192.0.2.2:51820\t10.244.0.0/16,10.10.0.2/32\t1000\t10\t20\t25\n${C.publicKey}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`;
    expect(parseDump(dump)).toEqual({
      ...deviceWithB,
      peers: [deviceWithB.peers[0], { publicKey: C.publicKey, endpoint: null, allowedIPs: [], lastHandshakeMs: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 }],
    });
    const args = setArgs("wg0", { privateKey: { key: A.privateKey, file: "/run/secrets/key" }, removePeers: [C.publicKey], upsertPeers: [{ publicKey: B.publicKey, allowedIPs: ["10.10.0.2/32", "10.244.0.0/16"], persistentKeepalive: 0 }] });
    expect(args).toEqual(["set", "wg0", "private-key", "/run/secrets/key", "peer", C.publicKey, "remove", "peer", B.publicKey, "persistent-keepalive", "off", "allowed-ips", "10.10.0.2/32,10.244.0.0/16"]);
    expect(args.join(" ")).not.toContain(A.privateKey);
  });
});

describe("the plan", () => {
  const desired = desiredDevice(mesh(), mesh().clusters[0]!);
  const endpoints = new Map([["b", "192.0.2.2:51820"]]);

  it("leaves a device that already matches alone (allowed IPs compared as sets)", () => {
    expect(planChange({ desired, current: deviceWithB, privateKey: { key: A.privateKey, file: "/k" }, endpoints })).toEqual({ removePeers: [], upsertPeers: [] });
  });

  it("adds a new cluster's peer and removes a departed one, without touching the others", () => {
    const withC = desiredDevice(mesh(true), mesh(true).clusters[0]!);
    const change = planChange({ desired: withC, current: deviceWithB, privateKey: null, endpoints: new Map([...endpoints, ["c", "[2001:db8::3]:51820"]]) });
    expect(change).toEqual({ removePeers: [], upsertPeers: [{ publicKey: C.publicKey, allowedIPs: ["10.10.0.3/32"], endpoint: "[2001:db8::3]:51820", persistentKeepalive: 25 }] });
    const stale: DeviceState = { ...deviceWithB, peers: [...deviceWithB.peers, { ...deviceWithB.peers[0]!, publicKey: C.publicKey }] };
    expect(planChange({ desired, current: stale, privateKey: null, endpoints })).toEqual({ removePeers: [C.publicKey], upsertPeers: [] });
  });

  it("a rotated peer key is a new peer; a rotated own key is set only when the key file matches the document", () => {
    const rotated = { ...deviceWithB, publicKey: C.publicKey, peers: [{ ...deviceWithB.peers[0]!, publicKey: C.publicKey }] };
    const change = planChange({ desired, current: rotated, privateKey: { key: A.privateKey, file: "/k" }, endpoints });
    expect(change.privateKey).toEqual({ key: A.privateKey, file: "/k" });
    expect(change.removePeers).toEqual([C.publicKey]);
    expect(change.upsertPeers.map((p) => p.publicKey)).toEqual([B.publicKey]);
    expect(planChange({ desired, current: rotated, privateKey: null, endpoints }).privateKey).toBeUndefined();
  });

  it("updates in place what changed on a peer (endpoint, keepalive, routes, port)", () => {
    const moved = { ...deviceWithB, listenPort: 1, peers: [{ ...deviceWithB.peers[0]!, endpoint: "192.0.2.99:1" }] };
    const change = planChange({ desired, current: moved, privateKey: null, endpoints });
    expect(change).toMatchObject({ listenPort: 51820, removePeers: [], upsertPeers: [{ publicKey: B.publicKey, endpoint: "192.0.2.2:51820" }] });
    // With no resolvable endpoint the peer's roaming endpoint is left as it is.
    expect(planChange({ desired, current: moved, privateKey: null, endpoints: new Map() }).upsertPeers).toEqual([]);
  });
});

describe("peer up", () => {
  const m = mesh();
  const desired = desiredDevice(m, m.clusters[0]!);
  it("is 1 only while the latest handshake is younger than the bound, 0 before any and when the interface is gone", () => {
    const at = (now: number, device: DeviceState | null) => observe(desired, m, device, now, 180_000).peers[0];
    expect(at(1_000_000 + 179_999, deviceWithB)).toMatchObject({ cluster: "b", up: true, handshakeAgeSeconds: 179.999, rxBytes: 10, txBytes: 20 });
    expect(at(1_000_000 + 180_000, deviceWithB)).toMatchObject({ up: false });
    expect(at(1_000_000, { ...deviceWithB, peers: [{ ...deviceWithB.peers[0]!, lastHandshakeMs: 0 }] })).toMatchObject({ up: false, handshakeAgeSeconds: Infinity });
    expect(at(1_000_000, null)).toMatchObject({ up: false, rxBytes: 0 });
    expect(observe(desired, m, null, Date.parse("2026-04-01T00:00:00Z"), 180_000).keyAges).toEqual([
      { cluster: "a", seconds: 90 * 86400 },
      { cluster: "b", seconds: 90 * 86400 },
    ]);
  });

  it("an agent whose interface does not exist (and may not create it) reports every peer down, and is unhealthy", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-mesh-agent-"));
    const k = generateKeyPair();
    await writePrivateKeyFile(join(dir, "a.key"), k.privateKey, false);
    writeFileSync(
      join(dir, "mesh.yaml"),
      meshDoc("10.10.0.0/24", [
        { name: "a", address: "10.10.0.1", endpoint: "192.0.2.1:51820", publicKey: k.publicKey, keyCreated: "2026-01-01", privateKeyFile: join(dir, "a.key") },
        { name: "b", address: "10.10.0.2", endpoint: "192.0.2.2:51820", publicKey: B.publicKey, keyCreated: "2026-01-01", privateKeyFile: join(dir, "b.key") },
      ]),
    );
    const agent = new MeshAgent({ meshFile: join(dir, "mesh.yaml"), cluster: "a", iface: `ztnone${process.pid}`.slice(0, 15), create: "none", backend: "auto", uapiDir: dir, logger: silentLogger, intervalMs: 60_000 });
    await agent.start();
    try {
      expect(agent.state()).toMatchObject({ lastResult: "failed", keyMatches: true });
      expect(agent.state().lastError).toContain("does not exist and --create none forbids creating it");
      const o = await agent.observe();
      expect(o).toMatchObject({ interfaceUp: false, peers: [{ cluster: "b", up: false }] });
      const text = await agent.metrics.registry.metrics();
      expect(metricValues(text, "zt_wireguard_peer_up").get("b")).toBe(0);
      expect(metricValues(text, "zt_wireguard_interface_up").get("")).toBe(0);
      expect(metricValues(text, "zt_mesh_reconciles_total")).toBeDefined();
      expect(text).toContain('zt_mesh_reconciles_total{result="failed"} 1');
    } finally {
      await agent.stop();
    }
  });
});
