// Agent requests on POST /v1/evaluate over real mTLS, with a real JWKS server: the agent's
// JWT is verified, its scopes checked against the destination's requirement, and every
// decision carries how the caller and the agent were authenticated.
import "reflect-metadata";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createIdentitySource, type IdentitySource } from "../../host/identity/tls.js";
import { createJwtVerifier } from "../../host/identity/jwt.js";
import { parseAgentRequest, missingScopes, decideAgentAccess, agentAuditFields, type RequiredScopes } from "../../host/identity/agent.js";
import { createCa, issueSvid, type TestCa } from "./pki.js";
import { startFakeAgent, svidMessage, type FakeAgent } from "./agent-server.js";
import { startHarness, clientAgent, request, type Harness } from "./harness.js";
import { startJwksServer, signingKey, mint, ISSUER, AUDIENCE, type JwksServer, type SigningKey } from "./jwks-server.js";

const ZT_ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt";
const LLM_GW = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";
const CHAT = "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat";
const POSTGRES = "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres";
const SIDECAR = "spiffe://hanzo.ai/hanzo-k8s/istio/ingress";

/** What the compiled `agentScopes` would say: the gateway needs llm:invoke, chat needs two scopes. */
const requiredScopes: RequiredScopes = (dest) => (dest === LLM_GW ? ["llm:invoke"] : dest === CHAT ? ["chat:write", "llm:invoke"] : null);

let dir: string;
let root: TestCa;
let agentSock: FakeAgent;
let source: IdentitySource;
let jwks: JwksServer;
let iamKey: SigningKey;
let h: Harness;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zt-agent-"));
  root = await createCa({ trustDomain: "hanzo.ai" });
  agentSock = await startFakeAgent(join(dir, "agent.sock"), { svids: [svidMessage(ZT_ID, await issueSvid(root, ZT_ID), [root])], crl: [], federated_bundles: {} });
  source = createIdentitySource({ mode: "spire", socketPath: agentSock.socketPath });
  await source.ready();
  iamKey = await signingKey("iam-1");
  jwks = await startJwksServer([iamKey]);
  const jwt = createJwtVerifier({ jwksUrl: jwks.url, issuer: ISSUER, audience: [AUDIENCE], maxLifetimeSec: 900, cacheTtlMs: 3600_000 });
  h = await startHarness({ source, jwt, requiredScopes, trustedEvaluators: [SIDECAR] });
});

afterAll(async () => {
  await h?.close();
  await source?.close();
  await agentSock?.close();
  await jwks?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function as(id: string) {
  const svid = await issueSvid(root, id);
  return clientAgent(root.pem, ZT_ID, { certPem: svid.certPem, keyPem: svid.keyPem }, false);
}

function body(token: string, dest = LLM_GW, port = 4000): unknown {
  return { agent: { token }, destination: { spiffe_id: dest, port } };
}

describe("POST /v1/evaluate with an agent JWT", () => {
  it("allows an agent holding the required scope; the decision names the sidecar and the agent", async () => {
    const r = await request(h.port, await as(LLM_GW), "POST", "/v1/evaluate", body(await mint(iamKey, { sub: "agent-7", scope: "llm:invoke" })));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: "ALLOW", reason: "agent_allowed", caller: `mtls:${LLM_GW}+jwt:agent-7` });
    expect(h.audits.at(-1)).toEqual({
      decision: "ALLOW",
      source: null,
      destination: { spiffe_id: LLM_GW, port: 4000 },
      operator: null,
      target: null,
      policy_matched: null,
      reason: "agent_allowed",
      caller: `mtls:${LLM_GW}+jwt:agent-7`,
    });
  });

  it("denies an agent missing a scope and lists what is missing", async () => {
    const r = await request(h.port, await as(CHAT), "POST", "/v1/evaluate", body(await mint(iamKey, { scope: "llm:invoke" }), CHAT));
    expect(r.body).toMatchObject({ decision: "DENY", reason: "agent_scope_missing", missing_scopes: ["chat:write"] });
    expect(h.audits.at(-1)).toMatchObject({ decision: "DENY", reason: "agent_scope_missing", caller: `mtls:${CHAT}+jwt:agent-7` });
  });

  it("denies agent access to a destination no policy opens to agents", async () => {
    const r = await request(h.port, await as(SIDECAR), "POST", "/v1/evaluate", body(await mint(iamKey, { scope: "llm:invoke db:all" }), POSTGRES, 5432));
    expect(r.body).toMatchObject({ decision: "DENY", reason: "agent_access_undeclared" });
    expect(String(r.body["detail"])).toContain(`no policy declares agent access to ${POSTGRES}`);
  });

  it("denies and audits rejected tokens with the JWT reason, without an unverified subject", async () => {
    const cases: Array<[Promise<string>, string]> = [
      [mint(iamKey, { iatOffset: -2000, expOffset: -60, scope: "llm:invoke" }), "jwt_token_expired"],
      [mint(iamKey, { expOffset: 3600, scope: "llm:invoke" }), "jwt_lifetime_exceeds_max"],
      [signingKey("iam-1").then((k) => mint(k, { scope: "llm:invoke" })), "jwt_bad_signature"],
      [signingKey("iam-9").then((k) => mint(k, { scope: "llm:invoke" })), "jwt_unknown_kid"],
      [mint(iamKey, { aud: "other", scope: "llm:invoke" }), "jwt_audience_mismatch"],
    ];
    for (const [token, reason] of cases) {
      const r = await request(h.port, await as(LLM_GW), "POST", "/v1/evaluate", body(await token));
      expect(r.body).toMatchObject({ decision: "DENY", reason });
      expect(h.audits.at(-1)).toMatchObject({ decision: "DENY", reason, caller: `mtls:${LLM_GW}` });
    }
  });

  it("a workload may not ask about agent calls to another destination unless it is a trusted evaluator", async () => {
    const token = await mint(iamKey, { scope: "llm:invoke" });
    const denied = await request(h.port, await as(CHAT), "POST", "/v1/evaluate", body(token, LLM_GW));
    expect(denied.status).toBe(403);
    expect(denied.body["error"]).toBe("destination_not_caller");
    const sidecar = await request(h.port, await as(SIDECAR), "POST", "/v1/evaluate", body(token, LLM_GW));
    expect(sidecar.body).toMatchObject({ decision: "ALLOW", caller: `mtls:${SIDECAR}+jwt:agent-7` });
  });

  it("a JWT in the Authorization header is refused with a pointer to agent.token", async () => {
    const token = await mint(iamKey, { scope: "llm:invoke" });
    const r = await request(h.port, await as(LLM_GW), "POST", "/v1/evaluate", { destination: { spiffe_id: LLM_GW, port: 4000 } }, { authorization: `Bearer ${token}` });
    expect(r.status).toBe(401);
    expect(r.body["error"]).toBe("invalid_admin_token");
    expect(String(r.body["detail"])).toContain("agent.token");
  });

  it("a malformed agent request is a 400 naming the JSON path", async () => {
    const r = await request(h.port, await as(LLM_GW), "POST", "/v1/evaluate", { agent: { token: "x" }, destination: { spiffe_id: LLM_GW, port: 70000 } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: "invalid_request", path: "/destination/port" });
  });
});

describe("agent request parsing and scope checks", () => {
  it("names the JSON path of each fault", () => {
    const cases: Array<[unknown, string]> = [
      [null, ""],
      [{ destination: {} , agent: "t" }, "/agent"],
      [{ agent: {}, destination: {} }, "/agent/token"],
      [{ agent: { token: "t", extra: 1 }, destination: {} }, "/agent/extra"],
      [{ agent: { token: "t" } }, "/destination"],
      [{ agent: { token: "t" }, destination: { spiffe_id: 3, port: 1 } }, "/destination/spiffe_id"],
      [{ agent: { token: "t" }, destination: { spiffe_id: "spiffe://Hanzo.ai/x", port: 1 } }, "/destination/spiffe_id"],
      [{ agent: { token: "t" }, destination: { spiffe_id: LLM_GW, port: 1.5 } }, "/destination/port"],
      [{ agent: { token: "t" }, destination: { spiffe_id: LLM_GW, port: 1, x: 1 } }, "/destination/x"],
      [{ agent: { token: "t" }, destination: { spiffe_id: LLM_GW, port: 1 }, source: {} }, "/source"],
    ];
    for (const [b, path] of cases) {
      const r = parseAgentRequest(b);
      expect(r.ok, JSON.stringify(b)).toBe(false);
      if (!r.ok) expect(r.path).toBe(path);
    }
    expect(parseAgentRequest(body("t"))).toEqual({ ok: true, value: { token: "t", destination: LLM_GW, port: 4000 } });
  });

  it("missingScopes keeps the required order", () => {
    expect(missingScopes(["b"], ["a", "b", "c"])).toEqual(["a", "c"]);
    expect(missingScopes(["a"], [])).toEqual([]);
  });

  it("without a JWKS, or when the scope lookup throws, agent requests are denied", async () => {
    const req = { token: "t", destination: LLM_GW, port: 1 };
    expect(await decideAgentAccess(req, null, requiredScopes)).toMatchObject({ allow: false, reason: "agent_auth_not_configured" });
    const jwt = createJwtVerifier({ jwksUrl: jwks.url, issuer: ISSUER, audience: [AUDIENCE], maxLifetimeSec: 900, cacheTtlMs: 3600_000 });
    const d = await decideAgentAccess({ ...req, token: await mint(iamKey, { scope: "llm:invoke" }) }, jwt, () => {
      throw new Error("module not loaded");
    });
    expect(d).toMatchObject({ allow: false, reason: "agent_access_undeclared", subject: "agent-7" });
    expect(d.detail).toContain("module not loaded");
    const caller = { transport: "plaintext" as const, spiffeId: null, trustDomain: null, adminToken: false, remoteAddress: "127.0.0.1" };
    expect(agentAuditFields(d, caller).caller).toBe("plaintext:127.0.0.1+jwt:agent-7");
  });
});
