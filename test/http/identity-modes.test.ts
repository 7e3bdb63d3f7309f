// The engine's two other identity modes: certificate files (ZT_TLS_CERT/KEY/BUNDLE, mTLS) and
// plaintext (no identity: loopback only, callers labelled by address, agent requests denied).
import "reflect-metadata";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { identityEngineOptions } from "../../host/http/identity.js";
import { assertPlaintextHost, type Identity, setupIdentity } from "../../host/identity/index.js";
import { createMetrics } from "../../host/metrics/metrics.js";
import { clientAgent, request } from "../identity/harness.js";
import { createCa, issueSvid } from "../identity/pki.js";
import { call, type DecisionBody, H, op, startTestEngine, svc, type TestEngine, TOKEN } from "./harness.js";

const ZT_ID = H + "zt";

let e: TestEngine | null = null;
let identity: Identity | null = null;
afterEach(async () => {
  await e?.dispose();
  await identity?.close();
  e = null;
  identity = null;
});

async function engineWith(env: Record<string, string>): Promise<TestEngine> {
  const metrics = createMetrics();
  identity = await setupIdentity(env, { registry: metrics.registry, adminToken: TOKEN, waitForSvid: false });
  return startTestEngine({ engine: { metrics, ...identityEngineOptions(identity) } });
}

describe("files mode (ZT_TLS_CERT, ZT_TLS_KEY, ZT_TLS_BUNDLE)", () => {
  it("serves the API over mTLS with the SVID from the files", async () => {
    const root = await createCa({ trustDomain: "hanzo.ai" });
    const svid = await issueSvid(root, ZT_ID);
    // The files live in a directory of their own; the engine gets its own temporary directory.
    const dir = mkdtempSync(join(tmpdir(), "zt-files-engine-"));
    try {
      writeFileSync(join(dir, "tls.crt"), svid.certPem);
      writeFileSync(join(dir, "tls.key"), svid.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, "bundle.crt"), root.pem);
      e = await engineWith({ ZT_TLS_CERT: join(dir, "tls.crt"), ZT_TLS_KEY: join(dir, "tls.key"), ZT_TLS_BUNDLE: join(dir, "bundle.crt") });
      expect(e.url.startsWith("https://")).toBe(true);
      const gw = await issueSvid(root, H + "gateway");
      const r = await request(e.port, clientAgent(root.pem, ZT_ID, { certPem: gw.certPem, keyPem: gw.keyPem }, false), "POST", "/v1/evaluate", svc("gateway", "postgres", 5432));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ decision: "ALLOW" });
      expect(e.sink!.records().at(-1)!.caller).toBe(`mtls:${H}gateway`);
      const anonymous = await request(e.port, clientAgent(root.pem, ZT_ID, {}, false), "POST", "/v1/evaluate", svc("gateway", "postgres", 5432));
      expect(anonymous).toMatchObject({ status: 401, body: { error: { code: "invalid_client_svid", reason: "no_client_certificate" } } });
      const h = await call<{ identity: Record<string, unknown> }>(e.healthUrl, "GET", "/healthz");
      expect(h.status).toBe(200);
      expect(h.body.identity).toMatchObject({ mode: "files", ready: true, spiffe_id: ZT_ID });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("plaintext mode (no identity settings)", () => {
  it("labels callers by address, does not restrict them, and denies agent requests (no JWKS)", async () => {
    e = await engineWith({});
    expect(e.url.startsWith("http://")).toBe(true);
    const own = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
    expect(own.status).toBe(200);
    const operator = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: op(["sre"], "postgres", "read", true) });
    expect(operator.body).toMatchObject({ decision: "ALLOW" });
    const agent = await call<DecisionBody & { agent: { detail: string } }>(e.url, "POST", "/v1/evaluate", { body: { agent: { token: "eyJ.x.y" }, destination: { spiffe_id: H + "gateway", port: 4000 } } });
    expect(agent.body).toMatchObject({ decision: "DENY", reason: "agent_auth_not_configured", enforced: true });
    expect(agent.body.agent.detail).toContain("ZT_JWKS_URL");
    const records = e.sink!.records();
    expect(records.map((r) => r.caller)).toEqual(["plaintext:127.0.0.1", "plaintext:127.0.0.1", "plaintext:127.0.0.1"]);
    expect(records.at(-1)).toMatchObject({ source: null, destination: { spiffe_id: H + "gateway", port: 4000 }, reason: "agent_auth_not_configured", decision: "DENY" });
    const h = await call<{ status: string; identity: Record<string, unknown> }>(e.healthUrl, "GET", "/healthz");
    expect(h.body.identity).toMatchObject({ mode: "plaintext", ready: true, spiffe_id: null });
    // A bearer token on /v1/evaluate must be the admin token.
    expect((await call(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432), token: "an-agent-jwt-by-mistake" })).status).toBe(401);
  });

  it("binds loopback only", () => {
    for (const host of ["127.0.0.1", "::1", "localhost", "127.0.0.53"]) expect(() => assertPlaintextHost(host)).not.toThrow();
    for (const host of ["0.0.0.0", "::", "10.0.0.5"]) expect(() => assertPlaintextHost(host)).toThrow(/refusing to serve plain HTTP/);
  });
});
