// SVID and bundle rotation on a live mTLS server: the agent pushes new short-lived SVIDs while
// clients keep sending requests over kept-alive and fresh connections; none may fail.
import "reflect-metadata";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import type { Agent } from "node:https";
import { createIdentitySource, type IdentitySource, type RotateEvent } from "../../host/identity/tls.js";
import { registerIdentityMetrics } from "../../host/identity/metrics.js";
import { createCa, issueSvid, type TestCa } from "./pki.js";
import { startFakeAgent, svidMessage, type FakeAgent, type WireResponse } from "./agent-server.js";
import { startHarness, clientAgent, request, type Harness, type Reply } from "./harness.js";

const ZT_ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt";
const GATEWAY = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";
/** Short-lived engine SVIDs, so rotation is exercised with real expiring certificates. */
const ENGINE_TTL_MS = 30_000;
const ROTATIONS = 8;

let dir: string;
let root: TestCa;
let agentCa: TestCa;
let agent: FakeAgent;
let source: IdentitySource;
let registry: Registry;
let h: Harness;
let now = (): Date => new Date();

async function engineState(bundle: TestCa[] = [root], federated: Record<string, Buffer> = {}): Promise<WireResponse> {
  const svid = await issueSvid(agentCa, ZT_ID, { ttlMs: ENGINE_TTL_MS });
  return { svids: [svidMessage(ZT_ID, svid, bundle)], crl: [], federated_bundles: federated };
}

function nextRotation(): Promise<RotateEvent> {
  return new Promise((resolve) => {
    const off = source.on("rotate", (ev) => {
      off();
      resolve(ev);
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zt-rot-"));
  root = await createCa({ trustDomain: "hanzo.ai" });
  agentCa = await createCa({ trustDomain: "hanzo.ai", name: "spire agent CA", issuer: root });
  agent = await startFakeAgent(join(dir, "agent.sock"), await engineState());
  registry = new Registry();
  source = createIdentitySource({ mode: "spire", socketPath: agent.socketPath }, { metrics: registerIdentityMetrics(registry), now: () => now() });
  await source.ready();
  h = await startHarness({ source });
});

afterAll(async () => {
  await h?.close();
  await source?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function gatewayAgent(keepAlive: boolean, ca: TestCa = agentCa, id = GATEWAY): Promise<Agent> {
  const svid = await issueSvid(ca, id);
  return clientAgent(root.pem, ZT_ID, { certPem: svid.certPem, keyPem: svid.keyPem }, keepAlive);
}

describe("rotation of the serving SVID", () => {
  it("rotates under load with zero failed requests, in place for kept-alive connections", async () => {
    const keepAlive = await Promise.all([0, 1, 2, 3].map(() => gatewayAgent(true)));
    const fresh = await Promise.all([0, 1].map(() => gatewayAgent(false)));
    const replies: Reply[] = [];
    const failures: string[] = [];
    let stop = false;
    const loop = async (a: Agent): Promise<void> => {
      while (!stop) {
        try {
          const r = await request(h.port, a, "GET", "/whoami");
          replies.push(r);
          if (r.status !== 200) failures.push(`HTTP ${r.status}: ${JSON.stringify(r.body)}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    };
    const loops = [...keepAlive, ...fresh].map((a) => loop(a));

    const firstSerial = source.current()!.serialNumber;
    const installed: string[] = [firstSerial];
    for (let i = 0; i < ROTATIONS; i++) {
      // Let requests flow on the current SVID, then rotate.
      const before = replies.length;
      while (replies.length < before + 20 && failures.length === 0) await new Promise((r) => setTimeout(r, 5));
      const rotated = nextRotation();
      agent.push(await engineState());
      const ev = await rotated;
      expect(ev.svidChanged).toBe(true);
      installed.push(ev.identity.serialNumber);
    }
    const settled = replies.length;
    while (replies.length < settled + 40 && failures.length === 0) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await Promise.all(loops);
    [...keepAlive, ...fresh].forEach((a) => a.destroy());

    expect(failures).toEqual([]);
    // No TLS session was resumed, not even after a rotation swapped the secure context.
    expect(replies.filter((r) => r.body["resumed"] !== false)).toEqual([]);
    if (process.env["ZT_TEST_VERBOSE"]) console.log(`rotation under load: ${replies.length} requests, ${ROTATIONS} rotations, ${new Set(replies.map((r) => r.serverSerial)).size} server certificates seen`);
    expect(new Set(installed).size).toBe(ROTATIONS + 1);
    // New handshakes picked up new SVIDs (Node reports serials in upper-case hex).
    const seen = new Set(replies.map((r) => r.serverSerial.toLowerCase()));
    expect(seen.size).toBeGreaterThan(2);
    for (const s of seen) expect(installed.map((x) => x.toLowerCase())).toContain(s);
    expect(seen.has(installed[installed.length - 1]!.toLowerCase())).toBe(true);
    // Kept-alive connections survived the rotations: they were reused and still show the first SVID.
    const reused = replies.filter((r) => r.socketReused);
    expect(reused.length).toBeGreaterThan(0);
    expect(reused.some((r) => r.serverSerial.toLowerCase() === firstSerial.toLowerCase())).toBe(true);

    const metric = await registry.getSingleMetric("zt_svid_rotations_total")!.get();
    expect(metric.values).toEqual([expect.objectContaining({ labels: { service: ZT_ID }, value: ROTATIONS })]);
    expect(source.status()).toMatchObject({ mode: "spire", ready: true, spiffeId: ZT_ID, rotations: ROTATIONS, lastError: null });
    const expiry = await registry.getSingleMetric("zt_svid_expiry_timestamp_seconds")!.get();
    expect(expiry.values[0]!.value).toBe(Math.floor(source.current()!.notAfter.getTime() / 1000));
  });

  it("keeps the current SVID when the agent sends one that does not validate", async () => {
    const serial = source.current()!.serialNumber;
    const gen = source.generation();
    const bad = await engineState();
    const other = await issueSvid(agentCa, ZT_ID);
    bad.svids[0]!.x509_svid_key = other.keyPkcs8;
    agent.push(bad);
    for (let i = 0; i < 200 && source.status().lastError === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(source.status().lastError).toContain("the private key does not match the certificate");
    expect(source.current()!.serialNumber).toBe(serial);
    expect(source.generation()).toBe(gen);
    const r = await request(h.port, await gatewayAgent(false), "GET", "/whoami");
    expect(r.status).toBe(200);
    expect(r.serverSerial.toLowerCase()).toBe(serial.toLowerCase());
  });

  it("applies bundle changes to client verification: a new root is trusted after the update, a removed domain is not", async () => {
    const root2 = await createCa({ trustDomain: "hanzo.ai", name: "next root" });
    const partner = await createCa({ trustDomain: "partner.org" });
    const fromRoot2 = await gatewayAgent(false, root2);
    expect(await request(h.port, fromRoot2, "GET", "/whoami")).toMatchObject({ status: 401, body: { error: "invalid_client_svid", reason: "untrusted_chain" } });

    const state1 = await engineState([root, root2], { "spiffe://partner.org": partner.der });
    let rotated = nextRotation();
    agent.push(state1);
    expect((await rotated).svidChanged).toBe(true);
    const ok = await request(h.port, await gatewayAgent(false, root2), "GET", "/whoami");
    expect(ok.status).toBe(200);
    const p = await request(h.port, await gatewayAgent(false, partner, "spiffe://partner.org/svc/a"), "GET", "/whoami");
    expect(p.body["caller"]).toBe("mtls:spiffe://partner.org/svc/a");

    // Same SVID, fewer bundles: the context changes, but it is not an SVID rotation.
    const rotations = source.status().rotations;
    const bundleOnly: WireResponse = { ...state1, federated_bundles: {}, svids: [{ ...state1.svids[0]!, bundle: root.der }] };
    rotated = nextRotation();
    agent.push(bundleOnly);
    const ev = await rotated;
    expect(ev.svidChanged).toBe(false);
    expect(source.status().rotations).toBe(rotations);
    expect(await request(h.port, await gatewayAgent(false, partner, "spiffe://partner.org/svc/a"), "GET", "/whoami")).toMatchObject({ status: 401, body: { reason: "unknown_trust_domain" } });
    expect(await request(h.port, await gatewayAgent(false, root2), "GET", "/whoami")).toMatchObject({ status: 401, body: { reason: "untrusted_chain" } });

    // An identical message changes nothing: the next event is the one after it.
    const gen = source.generation();
    agent.push(bundleOnly);
    const state2 = await engineState([root]);
    rotated = nextRotation();
    agent.push(state2);
    const next = await rotated;
    expect(next.generation).toBe(gen + 1);
    expect(next.svidChanged).toBe(true);
    expect(source.status().rotations).toBe(rotations + 1);
  });

  it("reports not ready once the serving SVID has expired without a replacement", () => {
    const notAfter = source.current()!.notAfter;
    now = () => new Date(notAfter.getTime() + 1000);
    try {
      const st = source.status();
      expect(st.ready).toBe(false);
      expect(st.lastError).toContain(`serving SVID expired at ${notAfter.toISOString()}`);
    } finally {
      now = () => new Date();
    }
  });
});
