// Agent decisions inside the engine: the reason written for a scope failure, observe mode,
// and failing closed (no decision for an agent slot, an audit trail that refuses, an
// evaluation error) - each audited as a destination-only record.
import "reflect-metadata";
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentReason, evaluateItems, finishDecisions, internalErrorDecisions } from "../../host/engine/decide.js";
import { type EvaluateItem, parseEvaluateItem } from "../../host/engine/evaluate-input.js";
import type { AgentDecision } from "../../host/identity/agent.js";
import { createJwtVerifier } from "../../host/identity/jwt.js";
import { type AuditSink, AuditUnavailableError } from "../../host/audit/record.js";
import { silentLogger } from "../../host/common/logger.js";
import { AUDIENCE, ISSUER, type JwksServer, mint, signingKey, type SigningKey, startJwksServer } from "../identity/jwks-server.js";
import { POLICIES_DIR } from "../support/seed.js";
import { call, H, startTestEngine, type TestEngine } from "../http/harness.js";
import { AGENT_POLICY } from "../http/agent-policy.js";

const GATEWAY = H + "gateway";

let jwks: JwksServer;
let key: SigningKey;
let e: TestEngine;

beforeAll(async () => {
  key = await signingKey("k1");
  jwks = await startJwksServer([key]);
  const dir = mkdtempSync(join(tmpdir(), "zt-agent-decide-"));
  mkdirSync(join(dir, "policies"));
  cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
  writeFileSync(join(dir, "policies", "agents.yaml"), AGENT_POLICY);
  // No identity layer: only the verifier is given (the engine accepts it on its own).
  const agentVerifier = createJwtVerifier({ jwksUrl: jwks.url, issuer: ISSUER, audience: [AUDIENCE], maxLifetimeSec: 900, cacheTtlMs: 3600_000 });
  e = await startTestEngine({ dir, env: { ZT_MODE: "observe" }, engine: { agentVerifier } });
});

afterAll(async () => {
  await e?.dispose();
  await jwks?.close();
});

function decision(over: Partial<AgentDecision>): AgentDecision {
  return { allow: false, reason: "agent_scope_missing", detail: "", subject: "a", issuer: ISSUER, scopes: [], requiredScopes: [], missingScopes: [], destination: GATEWAY, port: 4000, ...over };
}

function agentItem(token = "t"): EvaluateItem {
  const it = parseEvaluateItem({ agent: { token }, destination: { spiffe_id: GATEWAY, port: 4000 } }, -1);
  if (it.kind === "error") throw new Error(it.message);
  return it;
}

describe("agent reasons", () => {
  it("name the missing scopes, bounded for the audit trail", () => {
    expect(agentReason(decision({ missingScopes: ["chat:write", "llm:invoke"] }))).toBe("agent_scope_missing:chat:write,llm:invoke");
    expect(agentReason(decision({ reason: "jwt_token_expired" }))).toBe("jwt_token_expired");
    const many = Array.from({ length: 40 }, (_, i) => `scope-number-${i}`);
    const r = agentReason(decision({ missingScopes: many }));
    expect(r.length).toBeLessThanOrEqual(256);
    expect(r).toMatch(/^agent_scope_missing:scope-number-0,.*,\+\d+$/);
  });
});

describe("agent decisions in the engine", () => {
  it("follow observe mode: computed, returned not enforced, audited", async () => {
    const ok = await call<{ decision: string; enforced: boolean; reason: string }>(e.url, "POST", "/v1/evaluate", { body: { agent: { token: await mint(key, { scope: "llm:invoke" }) }, destination: { spiffe_id: GATEWAY, port: 4000 } } });
    expect(ok.body).toMatchObject({ decision: "ALLOW", enforced: false, reason: "agent_allowed" });
    const no = await call<{ decision: string; enforced: boolean; reason: string }>(e.url, "POST", "/v1/evaluate", { body: { agent: { token: await mint(key, { scope: "other" }) }, destination: { spiffe_id: GATEWAY, port: 4000 } } });
    expect(no.body).toMatchObject({ decision: "DENY", enforced: false, reason: "agent_scope_missing:llm:invoke" });
    expect(e.sink!.records().slice(-2).map((r) => [r.caller, r.reason, r.enforced])).toEqual([
      ["plaintext:127.0.0.1+jwt:agent-7", "agent_allowed", false],
      ["plaintext:127.0.0.1+jwt:agent-7", "agent_scope_missing:llm:invoke", false],
    ]);
  });

  it("fail closed: an agent slot without a decision is a DENY, and evaluation errors are audited by destination", () => {
    const active = e.store.current()!;
    const deps = { sink: e.sink!, incidents: e.incidents, metrics: e.metrics, log: silentLogger, mode: "enforce" as const, origin: "engine" };
    const items = [agentItem()];
    const now = Date.now();
    const [missing] = finishDecisions(active, items, evaluateItems(active, items, deps, now), 1, "mtls:x", deps, now, null);
    expect(missing).toMatchObject({ decision: "DENY", reason: "internal_error" });
    const [err] = internalErrorDecisions(active.version, items, "mtls:x", deps, now);
    expect(err).toMatchObject({ decision: "DENY", reason: "internal_error" });
    expect(e.sink!.records().slice(-2)).toMatchObject([
      { decision: "DENY", source: null, destination: { spiffe_id: GATEWAY, port: 4000 }, reason: "internal_error", caller: "mtls:x" },
      { decision: "DENY", source: null, destination: { spiffe_id: GATEWAY, port: 4000 }, reason: "internal_error", caller: "mtls:x" },
    ]);
  });

  it("an audit trail that refuses turns an enforced agent ALLOW into DENY audit_unavailable", () => {
    const active = e.store.current()!;
    // A sink that refuses every record, as the PostgreSQL sink does when memory and spool are exhausted.
    const refusing: AuditSink = {
      append: () => {
        throw new AuditUnavailableError("spool full");
      },
      status: () => ({ accepting: false, queued: 0, dropped: 0, detail: "spool full" }),
      flush: async () => undefined,
      close: async () => undefined,
    };
    const deps = { sink: refusing, incidents: e.incidents, metrics: e.metrics, log: silentLogger, mode: "enforce" as const, origin: "engine" };
    const items = [agentItem()];
    const now = Date.now();
    const allow = decision({ allow: true, reason: "agent_allowed" });
    const [d] = finishDecisions(active, items, evaluateItems(active, items, deps, now), 1, null, deps, now, [allow]);
    expect(d).toMatchObject({ decision: "DENY", reason: "audit_unavailable", enforced: true });
  });
});
