// A real WireGuard tunnel: two network namespaces on a veth underlay, wireguard-go in each,
// brought up and kept by `zt mesh agent` (real processes, one speaking the UAPI, one using
// wg), from one mesh document rendered for both gateways. TCP goes through the tunnel,
// zt_wireguard_peer_up goes 0 -> 1, back to 0 after the (test-shortened) bound once the peer
// is gone, a peer added and removed leaves the other's session alone, and a live key
// rotation recovers. Needs root: fails with that reason, never skips.
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type ClusterDoc, meshDoc, metricValues, replaceFile, zt } from "./helpers.js";
import { Lab, type Side } from "./lab.js";
import { requireProgram } from "../support/programs.js";

// Long enough for a loaded machine to observe 1 before it lapses (no rehandshake for 120 s), short enough to wait out.
const BOUND_S = 10;
const KEEPALIVE = 1;

interface Agent {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly log: string[];
}

let lab: Lab;
let dir: string;
const agents: Agent[] = [];
const figures: Record<string, string> = {};

function startAgent(side: Side, cluster: string, backend: "uapi" | "wg", doc: string): Promise<Agent> {
  const proc = lab.spawn(side, process.execPath, [CLI, "mesh", "agent", doc, "--cluster", cluster, "--interface", side.iface, "--create", "userspace", "--backend", backend, "--listen", "127.0.0.1:0", "--peer-up-bound", String(BOUND_S), "--interval", "1"]);
  const log: string[] = [];
  return new Promise((resolve, reject) => {
    let buf = "";
    const onLine = (line: string): void => {
      log.push(line);
      try {
        const j = JSON.parse(line) as { msg?: string; metrics?: string };
        if (j.msg === "mesh agent listening" && j.metrics) {
          const agent = { proc, url: j.metrics, log };
          agents.push(agent);
          resolve(agent);
        }
      } catch {
        // not a log line
      }
    };
    proc.stdout!.on("data", (b: Buffer) => {
      buf += b.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    proc.stderr!.on("data", (b: Buffer) => log.push(b.toString("utf8")));
    proc.once("exit", (code) => reject(new Error(`agent ${cluster} exited with ${code}: ${log.join("\n")}`)));
  });
}

async function stopAgent(agent: Agent): Promise<void> {
  if (agent.proc.exitCode !== null) return;
  const gone = new Promise((resolve) => agent.proc.once("exit", resolve));
  agent.proc.kill("SIGTERM");
  await gone;
}

/** GET inside a namespace (the agents listen on the namespace's loopback). */
function scrape(side: Side, url: string): string {
  const r = lab.run(side, process.execPath, ["-e", `fetch(${JSON.stringify(url)}).then(async (r) => process.stdout.write(await r.text()), (e) => { console.error(String(e)); process.exit(1); })`]);
  if (r.code !== 0) throw new Error(`scrape ${url}: ${r.err}`);
  return r.out;
}

function peerUp(side: Side, agent: Agent, cluster: string): number | undefined {
  return metricValues(scrape(side, agent.url), "zt_wireguard_peer_up").get(cluster);
}

/** Polls until `check` holds (bounded by the test's own timeout, not by a clock here). */
async function until(what: string, check: () => boolean): Promise<number> {
  const t0 = Date.now();
  for (let i = 0; i < 1200; i++) {
    if (check()) return Date.now() - t0;
    await sleep(50);
  }
  throw new Error(`never happened: ${what}`);
}

/** A TCP exchange from `from` to `to`:7007 (an echo server lab-started in the other namespace). */
function tcp(from: Side, host: string): string {
  const script = `const s = require("net").connect(7007, ${JSON.stringify(host)}, () => s.end("hello through the mesh"));
    let got = ""; s.on("data", (d) => (got += d)); s.on("end", () => process.stdout.write(got)); s.on("error", (e) => { console.error(String(e)); process.exit(1); });
    s.setTimeout(5000, () => { console.error("timeout"); process.exit(1); });`;
  const r = lab.run(from, process.execPath, ["-e", script]);
  if (r.code !== 0) throw new Error(`TCP to ${host}: ${r.err}`);
  return r.out;
}

function dump(side: Side): Array<{ publicKey: string; handshake: number; rx: number }> {
  const r = spawnSync("wg", ["show", side.iface, "dump"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`wg show ${side.iface} dump: ${r.stderr}`);
  return r.stdout
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split("\t"))
    .map((f) => ({ publicKey: f[0]!, handshake: Number(f[4]), rx: Number(f[5]) }));
}

function keygen(file: string, force = false): string {
  const r = zt(["mesh", "keygen", "-o", file, ...(force ? ["--force"] : [])]);
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as { publicKey: string }).publicKey;
}

describe("zt mesh agent over a real WireGuard tunnel (wireguard-go in two network namespaces)", () => {
  beforeAll(() => {
    lab = Lab.create("t");
    dir = mkdtempSync(join(tmpdir(), "zt-mesh-tunnel-"));
  });

  afterAll(async () => {
    for (const a of agents) await stopAgent(a).catch(() => undefined);
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (Object.keys(figures).length > 0) console.info(`mesh tunnel figures (loaded machine): ${JSON.stringify(figures)}`);
  });

  it("renders both gateways from one document, brings the tunnel up, watches it go down, adds a peer, rotates a key", { timeout: 180_000 }, async () => {
    const { a, b } = lab;
    const keyA = join(dir, "a.key");
    const keyB = join(dir, "b.key");
    const pubA = keygen(keyA);
    let pubB = keygen(keyB);
    for (const f of [keyA, keyB]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    const secrets = (): string[] => [keyA, keyB].flatMap((f) => {
      const k = readFileSync(f, "utf8").trim();
      return [k, Buffer.from(k, "base64").toString("hex")];
    });
    const seenSecrets = new Set(secrets());

    const cluster = (side: Side, name: string, publicKey: string, privateKeyFile: string): ClusterDoc => ({
      name,
      address: side.tunnel,
      endpoint: `${side.underlay}:51820`,
      publicKey,
      keyCreated: "2026-01-01",
      privateKeyFile,
      allowedIPs: [side.podCidr],
      persistentKeepalive: KEEPALIVE,
    });
    const docFile = join(dir, "mesh.yaml");
    const write = (extra: ClusterDoc[] = []): void => replaceFile(docFile, meshDoc("198.51.100.0/24", [cluster(a, "cluster-a", pubA, keyA), cluster(b, "cluster-b", pubB, keyB), ...extra]));
    write();
    expect(zt(["check", docFile]).code).toBe(0);

    // Both gateways' configurations from the one document, without their private keys.
    const renderA = zt(["mesh", "render", docFile, "--cluster", "cluster-a"]);
    const renderB = zt(["mesh", "render", docFile, "--cluster", "cluster-b", "--format", "wg-quick"]);
    expect(renderA.code).toBe(0);
    expect(renderA.out).toContain(`PublicKey = ${pubB}`);
    expect(renderA.out).toContain(`AllowedIPs = ${b.tunnel}/32, ${b.podCidr}`);
    expect(renderB.out).toContain(`Address = ${b.tunnel}/24`);
    expect(renderB.out).toContain(`PostUp = wg set %i private-key ${keyB}`);
    for (const out of [renderA.out, renderB.out]) {
      expect(out).not.toMatch(/^PrivateKey/m);
      for (const s of seenSecrets) expect(out).not.toContain(s);
    }

    // Gateway A alone: its interface is up, the peer is not.
    const agentA = await startAgent(a, "cluster-a", "uapi", docFile);
    expect(peerUp(a, agentA, "cluster-b")).toBe(0);
    expect(metricValues(scrape(a, agentA.url), "zt_wireguard_interface_up").get("")).toBe(1);

    // Gateway B joins: a handshake, peer_up 0 -> 1 on both sides.
    const tB = Date.now();
    let agentB = await startAgent(b, "cluster-b", "wg", docFile);
    figures.agent_b_start_ms = String(Date.now() - tB);
    figures.agent_b_listening_to_peer_up_ms = String(await until("peer_up{cluster-b} = 1 on A", () => peerUp(a, agentA, "cluster-b") === 1));
    expect(peerUp(b, agentB, "cluster-a")).toBe(1);

    // TCP through the tunnel: to B's mesh address and to an address of B's pod network.
    lab.spawn(b, process.execPath, ["-e", `require("net").createServer((s) => s.pipe(s)).listen(7007, "0.0.0.0")`]);
    await until("echo server in B", () => {
      try {
        return tcp(a, b.tunnel) === "hello through the mesh";
      } catch {
        return false;
      }
    });
    expect(tcp(a, b.podAddress)).toBe("hello through the mesh");
    const m = scrape(a, agentA.url);
    expect(metricValues(m, "zt_wireguard_peer_receive_bytes_total").get("cluster-b")).toBeGreaterThan(0);
    expect(metricValues(m, "zt_wireguard_peer_transmit_bytes_total").get("cluster-b")).toBeGreaterThan(0);
    expect(metricValues(m, "zt_wireguard_latest_handshake_age_seconds").get("cluster-b")).toBeLessThan(Infinity);
    expect(metricValues(m, "zt_wireguard_key_age_seconds").get("cluster-a")).toBeGreaterThan(0);

    // B goes away (its agent stops and takes its interface along): A reports 0 once the
    // latest handshake is older than the bound.
    const handshakeB = dump(a).find((p) => p.publicKey === pubB)!.handshake;
    await stopAgent(agentB);
    const tDown = Date.now();
    await until("peer_up{cluster-b} = 0 on A", () => peerUp(a, agentA, "cluster-b") === 0);
    figures.down_to_peer_up_0_ms = String(Date.now() - tDown);
    figures.handshake_to_peer_up_0_s = String(Date.now() / 1000 - handshakeB);
    expect(Date.now() / 1000 - handshakeB).toBeGreaterThanOrEqual(BOUND_S - 1);
    expect(() => tcp(a, b.tunnel)).toThrow();

    // B returns with the same key: up again.
    agentB = await startAgent(b, "cluster-b", "wg", docFile);
    await until("peer_up{cluster-b} = 1 on A after B's return", () => peerUp(a, agentA, "cluster-b") === 1);
    lab.spawn(b, process.execPath, ["-e", `require("net").createServer((s) => s.pipe(s)).listen(7007, "0.0.0.0")`]);
    await until("TCP after B's return", () => {
      try {
        return tcp(a, b.tunnel) === "hello through the mesh";
      } catch {
        return false;
      }
    });

    // A third cluster joins and leaves: A adds and removes that peer without touching B's session.
    const before = dump(a).find((p) => p.publicKey === pubB)!;
    const pubC = keygen(join(dir, "c.key"));
    write([{ name: "cluster-c", address: "198.51.100.3", endpoint: "192.0.2.3:51820", publicKey: pubC, keyCreated: "2026-01-01", privateKeyFile: join(dir, "c.key") }]);
    await until("peer C on A", () => dump(a).some((p) => p.publicKey === pubC));
    await until("peer C in A's metrics", () => metricValues(scrape(a, agentA.url), "zt_wireguard_peer_up").has("cluster-c"));
    write();
    await until("peer C gone from A", () => !dump(a).some((p) => p.publicKey === pubC));
    const after = dump(a).find((p) => p.publicKey === pubB)!;
    expect(after.handshake).toBe(before.handshake);
    expect(after.rx).toBeGreaterThanOrEqual(before.rx);
    expect(tcp(a, b.tunnel)).toBe("hello through the mesh");

    // Live key rotation of B: a new key file, then the document. A swaps the peer, B its key;
    // the tunnel recovers with the new key.
    const oldB = pubB;
    const tRotate = Date.now();
    pubB = keygen(keyB, true);
    for (const s of secrets()) seenSecrets.add(s);
    write();
    await until("A holds B's new key only", () => {
      const keys = dump(a).map((p) => p.publicKey);
      return keys.includes(pubB) && !keys.includes(oldB);
    });
    await until("B's device has its new key", () => spawnSync("wg", ["show", b.iface, "public-key"], { encoding: "utf8" }).stdout.trim() === pubB);
    await until("peer_up{cluster-b} = 1 with the new key", () => peerUp(a, agentA, "cluster-b") === 1);
    await until("TCP after the rotation", () => {
      try {
        return tcp(a, b.tunnel) === "hello through the mesh";
      } catch {
        return false;
      }
    });
    figures.rotation_to_tcp_ms = String(Date.now() - tRotate);
    expect(peerUp(b, agentB, "cluster-a")).toBe(1);

    // An invalid update (an inline private key) is refused: the last valid mesh keeps serving.
    const keysBefore = dump(a).map((p) => p.publicKey).sort();
    replaceFile(docFile, readFileSync(docFile, "utf8").replace("name: cluster-b", `name: cluster-b\n    privateKey: ${readFileSync(keyB, "utf8").trim()}`));
    await until("A refuses the document", () => metricValues(scrape(a, agentA.url), "zt_mesh_document_valid").get("") === 0);
    await until("A logs the refusal", () => agentA.log.some((l) => l.includes("mesh document refused")));
    expect(dump(a).map((p) => p.publicKey).sort()).toEqual(keysBefore);
    expect(tcp(a, b.tunnel)).toBe("hello through the mesh");
    write();
    await until("A accepts the fixed document", () => metricValues(scrape(a, agentA.url), "zt_mesh_document_valid").get("") === 1);

    // The agents' exposition is valid Prometheus text.
    const promtool = requireProgram("promtool");
    for (const [side, agent] of [[a, agentA], [b, agentB]] as const) {
      const checked = spawnSync(promtool, ["check", "metrics"], { input: scrape(side, agent.url), encoding: "utf8" });
      expect(checked.status, checked.stdout + checked.stderr).toBe(0);
    }

    // No private key in any log line of either agent.
    const logs = agents.flatMap((x) => x.log).join("\n");
    expect(logs).toContain("interface reconciled");
    for (const s of seenSecrets) expect(logs).not.toContain(s);
  });
});
