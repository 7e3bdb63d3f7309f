// Real mTLS on loopback: the engine's SVID comes from a gRPC Workload API agent; clients
// present valid, expired, foreign, malformed or no SVIDs.
import "reflect-metadata";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { createIdentitySource, type IdentitySource } from "../../host/identity/tls.js";
import { registerIdentityMetrics } from "../../host/identity/metrics.js";
import { createCa, issueSvid, type TestCa } from "./pki.js";
import { startFakeAgent, svidMessage, type FakeAgent } from "./agent-server.js";
import { startHarness, clientAgent, request, type Harness } from "./harness.js";

const ZT_ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt";
const GATEWAY = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";
const CHAT = "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat";
const SIDECAR = "spiffe://hanzo.ai/hanzo-k8s/istio/ingress";
const OPERATOR = "spiffe://hanzo.ai/hanzo-k8s/zt/operator-proxy";
const PARTNER_SVC = "spiffe://partner.org/prod/api";

let dir: string;
let root: TestCa;
let agentCa: TestCa;
let partner: TestCa;
let agent: FakeAgent;
let source: IdentitySource;
let h: Harness;
const logs: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
let clockOffsetMs = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zt-mtls-"));
  root = await createCa({ trustDomain: "hanzo.ai" });
  agentCa = await createCa({ trustDomain: "hanzo.ai", name: "spire agent CA", issuer: root });
  partner = await createCa({ trustDomain: "partner.org" });
  const engine = await issueSvid(agentCa, ZT_ID);
  agent = await startFakeAgent(join(dir, "agent.sock"), {
    svids: [svidMessage(ZT_ID, engine, [root])],
    crl: [],
    federated_bundles: { "spiffe://partner.org": partner.der },
  });
  const log = (level: string, msg: string, fields?: Record<string, unknown>): void => void logs.push({ level, msg, fields });
  source = createIdentitySource({ mode: "spire", socketPath: agent.socketPath }, { metrics: registerIdentityMetrics(new Registry()), log });
  await source.ready();
  h = await startHarness({
    source,
    adminToken: "s3cret-admin-token",
    adminSpiffeIds: [OPERATOR],
    trustedEvaluators: [SIDECAR],
    now: () => new Date(Date.now() + clockOffsetMs),
    log,
  });
});

afterAll(async () => {
  await h?.close();
  await source?.close();
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function client(spiffeId: string | null, opts: Parameters<typeof issueSvid>[2] = {}, ca: TestCa = agentCa, keepAlive = false) {
  const svid = await issueSvid(ca, spiffeId, opts);
  return clientAgent(root.pem, ZT_ID, { certPem: svid.certPem, keyPem: svid.keyPem }, keepAlive);
}

describe("mTLS: who may connect", () => {
  it("a client with a valid SVID is identified by it, and checks the engine's SPIFFE ID", async () => {
    const r = await request(h.port, await client(GATEWAY), "GET", "/whoami");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ caller: `mtls:${GATEWAY}`, admin: false });
  });

  it("a client that expects another server identity refuses the engine", async () => {
    const svid = await issueSvid(agentCa, GATEWAY);
    const wrong = clientAgent(root.pem, "spiffe://hanzo.ai/hanzo-k8s/hanzo/iam", { certPem: svid.certPem, keyPem: svid.keyPem }, false);
    await expect(request(h.port, wrong, "GET", "/whoami")).rejects.toThrow(`server is ${ZT_ID}, expected spiffe://hanzo.ai/hanzo-k8s/hanzo/iam`);
  });

  // Certificate problems do not fail the handshake: every request on such a connection is
  // answered 401 with the rule broken (the client learns why), and the server logs the
  // connection once, with its address.
  it("a client without a certificate is refused with no_client_certificate", async () => {
    const r = await request(h.port, clientAgent(root.pem, ZT_ID, {}, false), "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: "invalid_client_svid", reason: "no_client_certificate" });
    await waitForLog("no_client_certificate");
  });

  it("a client with an expired SVID is refused with expired", async () => {
    const expired = await client(GATEWAY, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    const r = await request(h.port, expired, "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: "invalid_client_svid", reason: "expired" });
    await waitForLog("expired");
  });

  it("a client from a trust domain without a bundle is refused with unknown_trust_domain", async () => {
    const stranger = await createCa({ trustDomain: "stranger.org" });
    const r = await request(h.port, await client("spiffe://stranger.org/ns/a/sa/b", {}, stranger), "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: "invalid_client_svid", reason: "unknown_trust_domain" });
    await waitForLog("unknown_trust_domain");
  });

  it("a client whose certificate another CA signed under our name is refused with untrusted_chain", async () => {
    const rogue = await createCa({ trustDomain: "hanzo.ai", name: "rogue" });
    const r = await request(h.port, await client(GATEWAY, {}, rogue), "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: "invalid_client_svid", reason: "untrusted_chain" });
  });

  it("TLS 1.1 and weak ciphers still fail the handshake, logged with the peer's address", async () => {
    const svid = await issueSvid(agentCa, GATEWAY);
    const old = new https.Agent({ ca: root.pem, cert: svid.certPem, key: svid.keyPem, maxVersion: "TLSv1.1", minVersion: "TLSv1", checkServerIdentity: () => undefined });
    await expect(request(h.port, old, "GET", "/whoami")).rejects.toThrow();
    const weak = new https.Agent({ ca: root.pem, cert: svid.certPem, key: svid.keyPem, maxVersion: "TLSv1.2", ciphers: "DES-CBC3-SHA:RC4-SHA:NULL-SHA", checkServerIdentity: () => undefined });
    await expect(request(h.port, weak, "GET", "/whoami")).rejects.toThrow();
    for (let i = 0; i < 200 && logs.filter((l) => l.msg === "TLS handshake rejected").length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const rejected = logs.filter((l) => l.msg === "TLS handshake rejected");
    expect(rejected.length).toBeGreaterThanOrEqual(2);
    for (const l of rejected) expect(l.fields?.["remote"]).toBe("127.0.0.1");
  });

  it("a client from a federated trust domain is accepted under its own ID", async () => {
    const r = await request(h.port, await client(PARTNER_SVC, {}, partner), "GET", "/whoami");
    expect(r.status).toBe(200);
    expect(r.body["caller"]).toBe(`mtls:${PARTNER_SVC}`);
  });

  it("a certificate naming another trust domain, signed by this domain's CA, is rejected", async () => {
    const r = await request(h.port, await client("spiffe://partner.org/prod/api"), "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body["error"]).toBe("invalid_client_svid");
    expect(r.body["reason"]).toBe("untrusted_chain");
    expect(r.body["detail"]).toContain('(untrusted_chain)');
    expect(r.body["detail"]).toContain('trust bundle of trust domain "partner.org"');
  });

  it("a certificate with two URI SANs is rejected with the rule it breaks", async () => {
    const r = await request(h.port, await client(null, { uris: [GATEWAY, CHAT] }), "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body["detail"]).toContain("exactly one URI SAN, the leaf has 2");
  });

  it("a CA certificate used as a client certificate is rejected", async () => {
    const r = await request(h.port, await client(GATEWAY, { ca: true }), "GET", "/whoami");
    expect(r.status).toBe(401);
    expect(r.body["detail"]).toContain("(leaf_is_ca)");
  });

  it("a keep-alive connection whose client SVID expires is refused on its next request", async () => {
    const c = await client(GATEWAY, { ttlMs: 60_000 }, agentCa, true);
    const first = await request(h.port, c, "GET", "/whoami");
    expect(first.status).toBe(200);
    clockOffsetMs = 120_000;
    try {
      const second = await request(h.port, c, "GET", "/whoami");
      expect(second.socketReused).toBe(true);
      expect(second.status).toBe(401);
      expect(second.body["detail"]).toContain("(expired)");
    } finally {
      clockOffsetMs = 0;
      c.destroy();
    }
  });
});

describe("caller authorization", () => {
  it("a caller may evaluate requests whose source is itself", async () => {
    const r = await request(h.port, await client(GATEWAY), "POST", "/v1/evaluate", { source: { spiffe_id: GATEWAY }, destination: { spiffe_id: CHAT, port: 4000 } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ evaluated_for: GATEWAY, caller: `mtls:${GATEWAY}` });
  });

  it("a caller may not evaluate on behalf of another source", async () => {
    const r = await request(h.port, await client(CHAT), "POST", "/v1/evaluate", { source: { spiffe_id: GATEWAY }, destination: { spiffe_id: CHAT, port: 4000 } });
    expect(r.status).toBe(403);
    expect(r.body["error"]).toBe("source_not_caller");
    expect(r.body["detail"]).toContain(`caller ${CHAT} may only evaluate requests whose source is itself`);
  });

  it("a trusted evaluator may evaluate for any source", async () => {
    const r = await request(h.port, await client(SIDECAR), "POST", "/v1/evaluate", { source: { spiffe_id: GATEWAY }, destination: { spiffe_id: CHAT, port: 4000 } });
    expect(r.status).toBe(200);
    expect(r.body["caller"]).toBe(`mtls:${SIDECAR}`);
  });

  it("admin actions: the admin SPIFFE ID and the admin token are admitted, others are not", async () => {
    const op = await request(h.port, await client(OPERATOR), "GET", "/v1/audit");
    expect(op.status).toBe(200);
    const gw = await request(h.port, await client(GATEWAY), "GET", "/v1/audit");
    expect(gw.status).toBe(401);
    expect(gw.body["error"]).toBe("unauthenticated");
    expect(gw.body["detail"]).toContain(`${GATEWAY} is not in ZT_ADMIN_SPIFFE_IDS`);
    const withToken = await request(h.port, await client(GATEWAY), "GET", "/v1/audit", undefined, { authorization: "Bearer s3cret-admin-token" });
    expect(withToken.status).toBe(200);
    const who = await request(h.port, await client(GATEWAY), "GET", "/whoami", undefined, { authorization: "Bearer s3cret-admin-token" });
    expect(who.body).toMatchObject({ caller: `mtls:${GATEWAY}+admin-token`, admin: true });
  });

  it("a wrong or malformed bearer token is refused, not ignored", async () => {
    const wrong = await request(h.port, await client(GATEWAY), "GET", "/whoami", undefined, { authorization: "Bearer nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.body["error"]).toBe("invalid_admin_token");
    const bad = await request(h.port, await client(GATEWAY), "GET", "/whoami", undefined, { authorization: "Basic abc" });
    expect(bad.status).toBe(401);
    expect(bad.body["error"]).toBe("malformed_authorization");
  });
});

/** The peer verifier logs each refused connection once, with the rule broken and the peer's address. */
async function waitForLog(code: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (logs.some((l) => l.msg === "client certificate is not a valid X.509-SVID" && l.fields?.["code"] === code && l.fields?.["remote"] === "127.0.0.1")) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no refused connection logged with ${code}; got ${JSON.stringify(logs.filter((l) => l.level === "warn").map((l) => l.fields))}`);
}
