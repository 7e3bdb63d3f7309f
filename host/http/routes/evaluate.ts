// POST /v1/evaluate: one request object -> one decision; an array -> decisions in order.
// The hot path: one JSON.parse, hand-written validation, one module generation per request,
// and a Response with plain-object headers (the fast path of @hono/node-server). Agent
// requests need an asynchronous JWT check: only requests that contain one wait for it.
import { type Context, Hono } from "hono";
import { readBodyText } from "../body.js";
import type { EngineEnv } from "../context.js";
import { type DecideDeps, type Decision, decideItems, internalErrorDecisions } from "../../engine/decide.js";
import { decisionJson, decisionsBody } from "../decision-json.js";
import { type EvaluateItem, parseEvaluateItem } from "../../engine/evaluate-input.js";
import { type AgentDecision, decideAgentAccess } from "../../identity/agent.js";
import type { JwtVerifier } from "../../identity/jwt.js";
import type { ActivePolicies, PolicyStore } from "../../engine/policy-store.js";
import type { CallerAuth } from "../../identity/caller.js";
import { authorizeItems } from "../identity.js";


export interface EvaluateRouteDeps extends DecideDeps {
  readonly store: PolicyStore;
  readonly maxBodyBytes: number;
  readonly maxBatch: number;
  /** Longest wait for room in the audit queue (AuditSink.admit) before decisions fail closed. */
  readonly auditWaitMs: number;
  /** What the caller (verified by the identity gate, in `c.var.identity`) may ask about. */
  readonly auth: CallerAuth;
  /** Verifies agent JWTs (ZT_JWKS_URL); null: every agent request is denied (agent_auth_not_configured). */
  readonly agentVerifier?: JwtVerifier | null;
}

/**
 * Decides the agent items of a request (JWT verification, then the scopes the active
 * module requires for the destination); other slots stay undefined. Tokens are verified
 * concurrently: with the JWKS cached each is CPU work, and an unknown `kid` costs at most one
 * refetch for all of them (the verifier's cooldown).
 */
async function decideAgents(items: readonly EvaluateItem[], active: ActivePolicies, verifier: JwtVerifier | null): Promise<Array<AgentDecision | undefined>> {
  const out = new Array<AgentDecision | undefined>(items.length);
  const required = (destination: string): readonly string[] | null => active.runtime.requiredScopes(destination);
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it.kind !== "agent") continue;
    pending.push(
      decideAgentAccess({ token: it.token, destination: it.destination.spiffe_id, port: it.destination.port }, verifier, required).then((d) => {
        out[i] = d;
      }),
    );
  }
  await Promise.all(pending);
  return out;
}

function respond(status: number, body: string | Uint8Array<ArrayBuffer>, requestId: string, version: string | null): Response {
  const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": requestId };
  if (version !== null) headers["x-zt-policy-version"] = version;
  return new Response(body, { status, headers });
}

function fail(status: number, requestId: string, code: string, message: string, path?: string): Response {
  return respond(status, JSON.stringify({ error: path === undefined ? { code, message } : { code, message, path } }), requestId, null);
}

export function evaluateRoutes(deps: EvaluateRouteDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const { log } = deps;

  const handle = async (requestId: string, c: Context<EngineEnv>): Promise<Response> => {
    // Who is asking: verified by the identity gate from the connection; recorded in the audit.
    const who = c.get("identity");
    const caller = c.get("caller");
    const body = await readBodyText(c, deps.maxBodyBytes);
    if (!body.ok) return fail(body.status, requestId, body.code, body.message, "$");
    let t0 = performance.now();
    let json: unknown;
    try {
      json = JSON.parse(body.text);
    } catch (e) {
      return fail(400, requestId, "invalid_json", `body is not valid JSON: ${(e as Error).message}`, "$");
    }
    const batch = Array.isArray(json);
    let items: EvaluateItem[];
    let agentCount = 0;
    if (batch) {
      const arr = json as unknown[];
      if (arr.length === 0) return fail(400, requestId, "empty_batch", "a batch needs at least one request", "$");
      if (arr.length > deps.maxBatch) return fail(400, requestId, "batch_too_large", `a batch holds at most ${deps.maxBatch} requests (got ${arr.length})`, "$");
      items = new Array<EvaluateItem>(arr.length);
      for (let i = 0; i < arr.length; i++) {
        const it = parseEvaluateItem(arr[i], i);
        if (it.kind === "error") return fail(400, requestId, "invalid_request", `${it.path}: ${it.message}`, it.path);
        if (it.kind === "agent") agentCount++;
        items[i] = it;
      }
    } else {
      const it = parseEvaluateItem(json, -1);
      if (it.kind === "error") return fail(400, requestId, "invalid_request", `${it.path}: ${it.message}`, it.path);
      if (it.kind === "agent") agentCount++;
      items = [it];
    }
    // A caller asks about itself (its source, agent calls to it) unless it is trusted or admin.
    const refused = authorizeItems(deps.auth, who, items, batch);
    if (refused !== null) return fail(refused.status, requestId, refused.code, refused.message, refused.path);
    // Backpressure: wait (bounded) until the audit queue has room for this request's
    // records; the wait is not evaluation latency.
    const room = deps.auditWaitMs > 0 && deps.sink.admit ? deps.sink.admit(items.length, deps.auditWaitMs) : null;
    if (room !== null) {
      const w0 = performance.now();
      await room;
      t0 += performance.now() - w0;
    }
    // One generation for the whole request, read after the body arrived (and after any
    // backpressure wait): a swap in between is simply not seen by this request.
    const active = deps.store.current();
    if (active === null) return fail(503, requestId, "no_module", "no policy module is loaded");
    let nowMs = Date.now();
    let decisions: Decision[];
    // Agent items first (asynchronous JWT checks); requests without one never await here.
    let agents: Array<AgentDecision | undefined> | null = null;
    try {
      if (agentCount > 0) {
        agents = await decideAgents(items, active, deps.agentVerifier ?? null);
        nowMs = Date.now();
      }
      decisions = decideItems(active, items, caller, deps, t0, nowMs, agents, { request_id: requestId });
    } catch (e) {
      log.error("evaluation failed; failing closed", { err: e, request_id: requestId, version: active.version });
      decisions = internalErrorDecisions(active.version, items, caller, deps, nowMs);
    }
    return respond(200, batch ? decisionsBody(decisions) : decisionJson(decisions[0]!), requestId, active.version);
  };

  app.post("/v1/evaluate", async (c) => {
    const requestId = c.get("requestId");
    if (!log.enabled("info")) return handle(requestId, c);
    // Access log: errors at info, successes only at debug (the hot path stays quiet).
    const t0 = performance.now();
    const res = await handle(requestId, c);
    const level = res.status >= 500 ? "error" : res.status >= 400 ? "info" : "debug";
    if (log.enabled(level)) log[level]("request", { request_id: requestId, method: "POST", path: "/v1/evaluate", status: res.status, ms: Math.round((performance.now() - t0) * 1000) / 1000, caller: c.get("caller"), remote: c.get("identity").remoteAddress });
    return res;
  });
  return app;
}
