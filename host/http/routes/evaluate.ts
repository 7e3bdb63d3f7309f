// POST /v1/evaluate: one request object -> one decision; an array -> decisions in order.
// The hot path: a bounded JSON body (body.ts), hand-written validation, one module generation
// per request, and a Response with plain-object headers (the fast path of @hono/node-server).
// Agent requests need an asynchronous JWT check: only requests that contain one wait for it.
// A batch larger than one slice (SLICE_ITEMS) is parsed, decided and serialised slice by
// slice with a turn of the event loop in between, so it never holds up other requests.
import { Hono } from "hono";
import { type BodyError, type JsonBatch, type JsonBody, readJsonBody, SLICE_ITEMS, yieldToLoop } from "../body.js";
import { type Answer, toResponse } from "../answer.js";
import type { EngineEnv } from "../context.js";
import { type DecideDeps, type Decision, decideItems, internalErrorDecisions } from "../../engine/decide.js";
import { decisionJson, decisionsBody, DecisionsWriter } from "../decision-json.js";
import { type EvaluateItem, LIMITS, parseEvaluateItem } from "../../engine/evaluate-input.js";
import type { JsonBounds } from "../json-bounds.js";
import { type AgentDecision, decideAgentAccess } from "../../identity/agent.js";
import type { JwtVerifier } from "../../identity/jwt.js";
import type { ActivePolicies, PolicyStore } from "../../engine/policy-store.js";
import type { Caller, CallerAuth } from "../../identity/caller.js";
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

/** One POST /v1/evaluate, with what the identity gate found. */
export interface EvaluateCall {
  readonly requestId: string;
  /** The verified caller (the identity gate's `c.var.identity`). */
  readonly identity: Caller;
  /** Its label (the gate's `c.var.caller`). */
  readonly caller: string | null;
  /** Reads, bounds and parses the body (readJsonBody, or readIncomingJson on the direct path). */
  readBody(bounds: JsonBounds): Promise<JsonBody | BodyError>;
}

function respond(status: number, body: string | Uint8Array<ArrayBuffer>, requestId: string, version: string | null): Answer {
  const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": requestId };
  if (version !== null) headers["x-zt-policy-version"] = version;
  return { status, body, headers };
}

function fail(status: number, requestId: string, code: string, message: string, path?: string, offset?: number): Answer {
  const error: Record<string, unknown> = { code, message };
  if (path !== undefined) error.path = path;
  if (offset !== undefined) error.offset = offset;
  return respond(status, JSON.stringify({ error }), requestId, null);
}

function refuseBody(e: BodyError, requestId: string): Answer {
  // Over-long batches keep the code they always had.
  const code = e.code === "json_too_many_items" && e.path === "$" ? "batch_too_large" : e.code;
  return fail(e.status, requestId, code, e.message, e.path, e.offset);
}

function answer(decisions: readonly Decision[], batch: boolean): string | Uint8Array<ArrayBuffer> {
  return batch ? decisionsBody(decisions) : decisionJson(decisions[0]!);
}

type Refusal = { ok: false; status: 400; code: string; message: string; path: string };
type ParsedItems = { ok: true; items: EvaluateItem[]; batch: boolean; agentCount: number } | Refusal;

function invalid(path: string, message: string): Refusal {
  return { ok: false, status: 400, code: "invalid_request", message: `${path}: ${message}`, path };
}

/** Validates the elements `values` of a batch starting at index `first` into `items`; returns the agent count or a refusal. */
function validateInto(values: readonly unknown[], first: number, items: EvaluateItem[]): number | Refusal {
  let agents = 0;
  for (let i = 0; i < values.length; i++) {
    const it = parseEvaluateItem(values[i], first + i);
    if (it.kind === "error") return invalid(it.path, it.message);
    if (it.kind === "agent") agents++;
    items[first + i] = it;
  }
  return agents;
}

function itemsOf(json: unknown): ParsedItems {
  if (!Array.isArray(json)) {
    const it = parseEvaluateItem(json, -1);
    if (it.kind === "error") return invalid(it.path, it.message);
    return { ok: true, items: [it], batch: false, agentCount: it.kind === "agent" ? 1 : 0 };
  }
  if (json.length === 0) return { ok: false, status: 400, code: "empty_batch", message: "a batch needs at least one request", path: "$" };
  const items = new Array<EvaluateItem>(json.length);
  const agents = validateInto(json, 0, items);
  return typeof agents === "number" ? { ok: true, items, batch: true, agentCount: agents } : agents;
}

/** A large batch, parsed and validated one slice at a time; one bad element refuses it all. */
async function batchItems(batch: JsonBatch): Promise<ParsedItems | BodyError> {
  const items = new Array<EvaluateItem>(batch.length);
  let agentCount = 0;
  for (let k = 0; k < batch.slices; k++) {
    if (k > 0) await yieldToLoop();
    const slice = batch.parseSlice(k);
    if (!slice.ok) return slice;
    const agents = validateInto(slice.values, slice.first, items);
    if (typeof agents !== "number") return agents;
    agentCount += agents;
  }
  return { ok: true, items, batch: true, agentCount };
}

/** POST /v1/evaluate without the HTTP framework: the route below and the direct path both serve with it. */
export function evaluateHandler(deps: EvaluateRouteDeps): (call: EvaluateCall) => Promise<Answer> {
  const { log } = deps;
  // What a well-formed body can need, with room: a batch nests three deep (operator roles four),
  // an element holds a few dozen values (64 roles at most), an agent token a few kilobytes.
  const bounds: JsonBounds = { maxDepth: 8, maxStringBytes: 64 * 1024, maxItems: deps.maxBatch, maxValuesPerItem: 4 * LIMITS.roles };

  const handle = async (call: EvaluateCall): Promise<Answer> => {
    const { requestId, caller } = call;
    // Who is asking: verified by the identity gate from the connection; recorded in the audit.
    const who = call.identity;
    const body = await call.readBody(bounds);
    if (!body.ok) return refuseBody(body, requestId);
    let t0 = performance.now();
    const parsed = body.batch === null ? itemsOf(body.value) : await batchItems(body.batch);
    if (!parsed.ok) return refuseBody(parsed, requestId);
    const { items, batch, agentCount } = parsed;
    if (batch) t0 = performance.now();
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
    // Agent items first (asynchronous JWT checks); requests without one never await here.
    let agents: Array<AgentDecision | undefined> | null = null;
    if (agentCount > 0) {
      try {
        agents = await decideAgents(items, active, deps.agentVerifier ?? null);
      } catch (e) {
        log.error("agent verification failed; failing closed", { err: e, request_id: requestId, version: active.version });
        return respond(200, answer(internalErrorDecisions(active.version, items, caller, deps, nowMs), batch), requestId, active.version);
      }
      nowMs = Date.now();
    }
    const context = { request_id: requestId };
    if (items.length <= SLICE_ITEMS) {
      const decisions = decideItems(active, items, caller, deps, t0, nowMs, agents, context);
      return respond(200, answer(decisions, batch), requestId, active.version);
    }
    // A large batch: decided, audited and serialised a slice at a time, with a turn of the
    // event loop between slices, all with the generation read above. latency_us is per slice.
    const out = new DecisionsWriter(items.length);
    for (let start = 0; start < items.length; start += SLICE_ITEMS) {
      if (start > 0) {
        await yieldToLoop();
        t0 = performance.now();
        nowMs = Date.now();
      }
      const end = Math.min(items.length, start + SLICE_ITEMS);
      out.add(decideItems(active, items.slice(start, end), caller, deps, t0, nowMs, agents === null ? null : agents.slice(start, end), context));
    }
    return respond(200, out.finish(), requestId, active.version);
  };

  return async (call) => {
    if (!log.enabled("info")) return handle(call);
    // Access log: errors at info, successes only at debug (the hot path stays quiet).
    const t0 = performance.now();
    const res = await handle(call);
    const level = res.status >= 500 ? "error" : res.status >= 400 ? "info" : "debug";
    if (log.enabled(level)) log[level]("request", { request_id: call.requestId, method: "POST", path: "/v1/evaluate", status: res.status, ms: Math.round((performance.now() - t0) * 1000) / 1000, caller: call.caller, remote: call.identity.remoteAddress });
    return res;
  };
}

/** The Hono route: the reference the direct path (direct-evaluate.ts) is tested against. */
export function evaluateRoutes(evaluate: (call: EvaluateCall) => Promise<Answer>, maxBodyBytes: number): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  app.post("/v1/evaluate", async (c) => {
    return toResponse(await evaluate({ requestId: c.get("requestId"), identity: c.get("identity"), caller: c.get("caller"), readBody: (bounds) => readJsonBody(c, maxBodyBytes, bounds) }));
  });
  return app;
}
