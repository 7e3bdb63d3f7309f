// The engine behind the identity layer, over real mTLS on loopback: a fake SPIRE agent gives
// the engine its SVID, a test CA issues the callers' SVIDs, an IAM stand-in serves the JWKS,
// and the audit trail is the real one (embedded PostgreSQL), queried through /v1/audit.
import "reflect-metadata";
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import type * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Audit, auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { identityEngineOptions } from "../../host/http/identity.js";
import { type Identity, setupIdentity } from "../../host/identity/index.js";
import { createMetrics } from "../../host/metrics/metrics.js";
import { startFakeAgent, svidMessage, type FakeAgent } from "../identity/agent-server.js";
import { clientAgent, type Reply, request } from "../identity/harness.js";
import { AUDIENCE, ISSUER, type JwksServer, mint, mintCritical, signingKey, type SigningKey, startJwksServer } from "../identity/jwks-server.js";
import { createCa, issueSvid, type TestCa } from "../identity/pki.js";
import { POLICIES_DIR } from "../support/seed.js";
import { AGENT_POLICY } from "./agent-policy.js";
import { call, H, startTestEngine, type TestEngine, TOKEN } from "./harness.js";
import { parseMetrics, value } from "../metrics/metrics-text.js";

const ZT_ID = H + "zt";
const GATEWAY = H + "gateway";
const CHAT = H + "chat";
const POSTGRES = H + "postgres";
/** A sidecar gateway allowed to ask on behalf of others (ZT_TRUSTED_EVALUATORS). */
const SIDECAR = "spiffe://hanzo.ai/hanzo-k8s/istio/ingress";
/** The admin CLI's identity (ZT_ADMIN_SPIFFE_IDS). */
const ADMIN = "spiffe://hanzo.ai/hanzo-k8s/zt/admin-cli";

let root: TestCa;
let spire: FakeAgent;
let jwks: JwksServer;
let iamKey: SigningKey;
let identity: Identity;
let e: TestEngine;
let audit: Audit;
const clients = new Map<string, https.Agent>();

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "zt-mtls-"));
  mkdirSync(join(dir, "policies"));
  cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
  writeFileSync(join(dir, "policies", "agents.yaml"), AGENT_POLICY);
  root = await createCa({ trustDomain: "hanzo.ai" });
  spire = await startFakeAgent(join(dir, "agent.sock"), { svids: [svidMessage(ZT_ID, await issueSvid(root, ZT_ID), [root])], crl: [], federated_bundles: {} });
  iamKey = await signingKey("iam-1");
  jwks = await startJwksServer([iamKey]);
  // As serve.ts does it: the engine's metrics first, the identity registers on that registry.
  const metrics = createMetrics();
  identity = await setupIdentity(
    {
      ZT_SPIRE_SOCKET: `unix://${spire.socketPath}`,
      ZT_TRUSTED_EVALUATORS: SIDECAR,
      ZT_ADMIN_SPIFFE_IDS: ADMIN,
      ZT_JWKS_URL: jwks.url.href,
      ZT_JWT_ISSUER: ISSUER,
      ZT_JWT_AUDIENCE: AUDIENCE,
    },
    { registry: metrics.registry, adminToken: TOKEN, waitForSvid: false },
  );
  e = await startTestEngine({
    dir,
    audit: async (d) => (audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(d, "data") }))),
    engine: { metrics, ...identityEngineOptions(identity) },
  });
});

afterAll(async () => {
  await e?.dispose();
  await identity?.close();
  await spire?.close();
  await jwks?.close();
});

/** An HTTPS client presenting an SVID for `id` (one per identity, new connection per request). */
async function as(id: string): Promise<https.Agent> {
  let a = clients.get(id);
  if (!a) {
    const svid = await issueSvid(root, id);
    a = clientAgent(root.pem, ZT_ID, { certPem: svid.certPem, keyPem: svid.keyPem }, false);
    clients.set(id, a);
  }
  return a;
}

async function post(id: string, body: unknown): Promise<Reply> {
  return request(e.port, await as(id), "POST", "/v1/evaluate", body);
}

function svcBody(src: string, dst: string, port: number): Record<string, unknown> {
  return { source: { spiffe_id: src }, destination: { spiffe_id: dst, port } };
}

function agentBody(token: string, dst = GATEWAY, port = 4000): Record<string, unknown> {
  return { agent: { token }, destination: { spiffe_id: dst, port } };
}

interface AuditRow {
  decision_id: string;
  decision: string;
  reason: string;
  caller: string | null;
  source: unknown;
  destination: { spiffe_id: string; port: number } | null;
}

/** The audit records of these decisions, read back from PostgreSQL through GET /v1/audit (as the admin SVID). */
async function audited(ids: string[], query: string): Promise<Map<string, AuditRow>> {
  for (;;) {
    const r = await request(e.port, await as(ADMIN), "GET", `/v1/audit?${query}`);
    expect(r.status).toBe(200);
    const rows = (r.body["records"] as AuditRow[]).filter((x) => ids.includes(x.decision_id));
    if (rows.length === ids.length) return new Map(rows.map((x) => [x.decision_id, x]));
    // The writer commits asynchronously.
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe("the engine over mTLS (SVIDs from a SPIRE agent)", () => {
  it("serves HTTPS only, and reports its identity on the plain-HTTP health port", async () => {
    expect(e.url.startsWith("https://")).toBe(true);
    const h = await call<{ status: string; identity: Record<string, unknown> }>(e.healthUrl, "GET", "/healthz");
    expect(h.status).toBe(200);
    expect(h.body.identity).toMatchObject({ mode: "spire", ready: true, spiffe_id: ZT_ID, last_error: null });
    // Plain HTTP on the API port is not answered.
    await expect(fetch(`http://127.0.0.1:${e.port}/v1/policies`)).rejects.toThrow();
  });

  it("a workload evaluates its own source (200) and the audit record names it", async () => {
    const r = await post(GATEWAY, svcBody(GATEWAY, POSTGRES, 5432));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: "ALLOW", reason: "allowed_by_rule", policy_matched: "hanzo-core-policy/rule-2" });
    const rows = await audited([r.body["decision_id"] as string], `source=${encodeURIComponent(GATEWAY)}&limit=1000`);
    expect(rows.get(r.body["decision_id"] as string)).toMatchObject({ caller: `mtls:${GATEWAY}`, decision: "ALLOW" });
  });

  it("a workload may not ask about another source: 403 naming the rule and the path", async () => {
    const r = await post(GATEWAY, svcBody(CHAT, GATEWAY, 4000));
    expect(r.status).toBe(403);
    expect(r.body["error"]).toMatchObject({ code: "source_not_caller", path: "$.source.spiffe_id" });
    expect(String((r.body["error"] as { message: string }).message)).toContain("ZT_TRUSTED_EVALUATORS");
    // One foreign item refuses the whole batch, with its index.
    const b = await post(GATEWAY, [svcBody(GATEWAY, POSTGRES, 5432), svcBody(CHAT, GATEWAY, 4000)]);
    expect(b.status).toBe(403);
    expect(b.body["error"]).toMatchObject({ code: "source_not_caller", path: "$[1].source.spiffe_id" });
  });

  it("a trusted evaluator may ask about any source (200)", async () => {
    const r = await post(SIDECAR, [svcBody(CHAT, GATEWAY, 4000), svcBody(CHAT, POSTGRES, 5432)]);
    expect(r.status).toBe(200);
    expect((r.body as unknown as Array<{ decision: string }>).map((d) => d.decision)).toEqual(["ALLOW", "DENY"]);
  });

  it("operator requests are answered only to trusted evaluators and admins", async () => {
    const op = { operator: { subject: "alice@hanzo.ai", roles: ["sre"], mfa: true }, target: { service: "postgres", action: "read" } };
    const denied = await post(GATEWAY, op);
    expect(denied.status).toBe(403);
    expect(denied.body["error"]).toMatchObject({ code: "operator_not_trusted", path: "$.operator" });
    expect((await post(SIDECAR, op)).body).toMatchObject({ decision: "ALLOW", reason: "allowed_by_rule" });
    expect((await post(ADMIN, op)).body).toMatchObject({ decision: "ALLOW" });
  });

  it("refuses a connection without a client certificate, or with one from another CA, with the reason", async () => {
    const none = await request(e.port, clientAgent(root.pem, ZT_ID, {}, false), "POST", "/v1/evaluate", svcBody(GATEWAY, POSTGRES, 5432));
    expect(none).toMatchObject({ status: 401, body: { error: { code: "invalid_client_svid", reason: "no_client_certificate" } } });
    const rogue = await createCa({ trustDomain: "hanzo.ai", name: "rogue" });
    const forged = await issueSvid(rogue, GATEWAY);
    const r = await request(e.port, clientAgent(root.pem, ZT_ID, { certPem: forged.certPem, keyPem: forged.keyPem }, false), "POST", "/v1/evaluate", svcBody(GATEWAY, POSTGRES, 5432));
    expect(r).toMatchObject({ status: 401, body: { error: { code: "invalid_client_svid", reason: "untrusted_chain" } } });
  });

  it("admin actions accept an admin SPIFFE ID; other SVIDs need the admin token", async () => {
    const policy = { apiVersion: "zt.hanzo.ai/v1", kind: "ServiceAccessPolicy", metadata: { name: "extra" }, spec: { rules: [{ from: { spiffe: CHAT }, to: [{ spiffe: H + "search", ports: [9200] }] }], defaultAction: "DENY" } };
    const created = await request(e.port, await as(ADMIN), "PUT", "/v1/policies/extra", policy);
    expect(created.status).toBe(201);
    expect((await request(e.port, await as(ADMIN), "PUT", "/v1/policies/extra", policy)).status).toBe(200);
    const refused = await request(e.port, await as(GATEWAY), "PUT", "/v1/policies/extra", policy);
    expect(refused.status).toBe(401);
    expect((refused.body["error"] as { code: string }).code).toBe("unauthenticated");
    expect((await request(e.port, await as(GATEWAY), "GET", "/v1/audit?limit=1")).status).toBe(401);
    expect((await request(e.port, await as(GATEWAY), "PUT", "/v1/incidents/INC-9", {})).status).toBe(401);
    // The token still works, from any verified workload.
    const byToken = await request(e.port, await as(GATEWAY), "DELETE", "/v1/policies/extra", undefined, { authorization: `Bearer ${TOKEN}` });
    expect(byToken.status).toBe(200);
    // Incidents record who declared them.
    const inc = await request(e.port, await as(ADMIN), "PUT", "/v1/incidents/INC-9", {});
    expect(inc.status).toBe(201);
    expect((inc.body["incident"] as { created_by: string }).created_by).toBe(`mtls:${ADMIN}`);
  });

  it("a bearer token that is not the admin token is refused on /v1/evaluate", async () => {
    const r = await request(e.port, await as(GATEWAY), "POST", "/v1/evaluate", svcBody(GATEWAY, POSTGRES, 5432), { authorization: "Bearer not-the-admin-token" });
    expect(r.status).toBe(401);
    expect(r.body["error"]).toMatchObject({ code: "invalid_admin_token" });
  });
});

describe("agent requests on the engine (JWT from the IAM JWKS, scopes from agentScopes)", () => {
  it("decides each token precisely and audits every decision with its reason", async () => {
    const cases: Array<{ name: string; asker: string; body: unknown; decision: string; reason: string; caller: string; missing?: string[] }> = [
      { name: "allowed", asker: GATEWAY, body: agentBody(await mint(iamKey, { scope: "llm:invoke" })), decision: "ALLOW", reason: "agent_allowed", caller: `mtls:${GATEWAY}+jwt:agent-7` },
      { name: "expired", asker: GATEWAY, body: agentBody(await mint(iamKey, { iatOffset: -2000, expOffset: -60, scope: "llm:invoke" })), decision: "DENY", reason: "jwt_token_expired", caller: `mtls:${GATEWAY}` },
      { name: "missing scopes", asker: CHAT, body: agentBody(await mint(iamKey, { scope: "llm:invoke" }), CHAT, 3000), decision: "DENY", reason: "agent_scope_missing:chat:write", caller: `mtls:${CHAT}+jwt:agent-7`, missing: ["chat:write"] },
      { name: "wrong signature", asker: GATEWAY, body: agentBody(await mint(await signingKey("iam-1"), { scope: "llm:invoke" })), decision: "DENY", reason: "jwt_bad_signature", caller: `mtls:${GATEWAY}` },
      { name: "crit header", asker: GATEWAY, body: agentBody(mintCritical(iamKey, "exp-ext", { scope: "llm:invoke" })), decision: "DENY", reason: "jwt_unsupported_critical_header", caller: `mtls:${GATEWAY}` },
      { name: "unknown kid", asker: GATEWAY, body: agentBody(await mint(await signingKey("iam-9"), { scope: "llm:invoke" })), decision: "DENY", reason: "jwt_unknown_kid", caller: `mtls:${GATEWAY}` },
      { name: "undeclared destination", asker: POSTGRES, body: agentBody(await mint(iamKey, { scope: "llm:invoke" }), POSTGRES, 5432), decision: "DENY", reason: "agent_access_undeclared", caller: `mtls:${POSTGRES}+jwt:agent-7` },
    ];
    const ids: string[] = [];
    for (const c of cases) {
      const r = await post(c.asker, c.body);
      expect(r.status, c.name).toBe(200);
      expect(r.body, c.name).toMatchObject({ decision: c.decision, reason: c.reason, enforced: true, policy_matched: null });
      const agent = r.body["agent"] as { subject: string | null; missing_scopes: string[]; detail: string };
      expect(agent.subject, c.name).toBe(c.caller.includes("+jwt:") ? "agent-7" : null);
      expect(agent.missing_scopes, c.name).toEqual(c.missing ?? []);
      expect(agent.detail.length, c.name).toBeGreaterThan(0);
      ids.push(r.body["decision_id"] as string);
    }
    const rows = await audited(ids, "limit=1000&since=2000-01-01T00:00:00Z");
    cases.forEach((c, i) => {
      const row = rows.get(ids[i]!)!;
      expect(row, c.name).toMatchObject({ decision: c.decision, reason: c.reason, caller: c.caller, source: null });
      expect(row.destination!.spiffe_id, c.name).toBe((c.body as { destination: { spiffe_id: string } }).destination.spiffe_id);
    });
    // Destination-only records keep the hash chain verifiable (the row maps back to the hashed record).
    await audit.sink.flush();
    expect(await audit.verify()).toMatchObject({ ok: true, broken: [] });
  });

  it("evaluates agent and service requests side by side in one batch, in order", async () => {
    const token = await mint(iamKey, { scope: "llm:invoke" });
    const r = await post(GATEWAY, [svcBody(GATEWAY, POSTGRES, 5432), agentBody(token), svcBody(GATEWAY, H + "redis", 6379), agentBody("not-a-jwt")]);
    expect(r.status).toBe(200);
    const ds = r.body as unknown as Array<{ decision: string; reason: string; policy_version: string }>;
    expect(ds.map((d) => `${d.decision}:${d.reason}`)).toEqual(["ALLOW:allowed_by_rule", "ALLOW:agent_allowed", "DENY:default_deny", "DENY:jwt_malformed_token"]);
    expect(new Set(ds.map((d) => d.policy_version)).size).toBe(1);
  });

  it("a workload may ask only about agent calls to itself unless trusted", async () => {
    const token = await mint(iamKey, { scope: "llm:invoke" });
    const r = await post(CHAT, agentBody(token, GATEWAY));
    expect(r.status).toBe(403);
    expect(r.body["error"]).toMatchObject({ code: "destination_not_caller", path: "$.destination.spiffe_id" });
    expect((await post(SIDECAR, agentBody(token, GATEWAY))).body).toMatchObject({ decision: "ALLOW", reason: "agent_allowed" });
  });

  it("a malformed agent request is a 400 with its JSON path", async () => {
    const r = await post(GATEWAY, [agentBody("t"), { agent: { token: "t" }, destination: { spiffe_id: GATEWAY, port: 0 } }]);
    expect(r.status).toBe(400);
    expect(r.body["error"]).toMatchObject({ code: "invalid_request", path: "$[1].destination.port" });
    const extra = await post(GATEWAY, { agent: { token: "t", kid: "x" }, destination: { spiffe_id: GATEWAY, port: 1 } });
    expect(extra.body["error"]).toMatchObject({ path: "$.agent.kid" });
  });

  it("counts agent decisions and JWT verifications in the metrics", async () => {
    const { samples } = parseMetrics(await (await fetch(e.healthUrl + "/metrics")).text());
    expect(value(samples, "zt_decisions_total", { decision: "allow", source: "agent", dest: GATEWAY })).toBeGreaterThanOrEqual(2);
    expect(value(samples, "zt_jwt_verifications_total", { result: "token_expired" })).toBe(1);
    expect(value(samples, "zt_svid_expiry_timestamp_seconds", { service: ZT_ID })).toBeGreaterThan(Date.now() / 1000);
  });
});

describe("SVID rotation on the running engine", () => {
  it("new handshakes get the new SVID; zt_svid_rotations_total counts it", async () => {
    const before = await post(GATEWAY, svcBody(GATEWAY, POSTGRES, 5432));
    const next = await issueSvid(root, ZT_ID);
    const rotated = new Promise<void>((res) => {
      const off = identity.source.on("rotate", () => {
        off();
        res();
      });
    });
    spire.push({ svids: [svidMessage(ZT_ID, next, [root])], crl: [], federated_bundles: {} });
    await rotated;
    const after = await post(GATEWAY, svcBody(GATEWAY, POSTGRES, 5432));
    expect(after.status).toBe(200);
    expect(after.serverSerial).not.toBe(before.serverSerial);
    expect(after.serverSerial.toLowerCase()).toBe(next.leaf.serialNumber.toLowerCase());
    const { samples } = parseMetrics(await (await fetch(e.healthUrl + "/metrics")).text());
    expect(value(samples, "zt_svid_rotations_total", { service: ZT_ID })).toBe(1);
    expect(samples.filter((s) => s.name === "zt_svid_rotations_total")).toHaveLength(1);
  });
});
