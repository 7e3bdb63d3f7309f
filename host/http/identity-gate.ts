// The one middleware that enforces route-identity.ts: the first thing every request on the
// API port meets, before the evaluate hot path, extension claims and every other route. It
// reads the caller from the connection (validated once, at the handshake: host/identity/peer.ts)
// and the Authorization header, checks the rule of the route that will answer, and either
// refuses (401/403 with the reason; the log line names the peer's address) or hands on with
// the caller in `c.var.identity` (and `callerOf(c)` for apps that extensions serve on claim).
import type { IncomingMessage } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import { type Answer, toResponse } from "./answer.js";
import type { Logger } from "../common/logger.js";
import { callerLabelOf, type Caller, type CallerAuth, type IdentityRule } from "../identity/caller.js";
import type { EngineEnv } from "./context.js";
import type { Extension } from "./extension.js";
import { requestIdOf } from "./request-id.js";
import type { RouteRules } from "./route-identity.js";

export interface IdentityGateDeps {
  readonly auth: CallerAuth;
  readonly log: Logger;
  /** Extensions that claim whole requests, asked in order. */
  readonly claimers: readonly Extension[];
  /** The route rules; available once every route is registered (createApp seals them last). */
  readonly rules: () => RouteRules;
}

/** Callers of claimed requests, for the extension's own app (its Hono context is a new one). */
const claimedCallers = new WeakMap<IncomingMessage, Caller>();

function incomingOf(c: Context<EngineEnv>): IncomingMessage | null {
  // Always there behind @hono/node-server; absent only when the app is driven without a socket.
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming ?? null;
}

/**
 * The verified caller of this request: in the API's routes `c.get("identity")` is the same;
 * in an extension's app serving a claimed request, this is the only way to it. Throws when the
 * gate did not pass the request (a wiring error: the engine answers 500, closed).
 */
export function callerOf(c: Context): Caller {
  const own = (c as Context<EngineEnv>).get("identity") as Caller | undefined;
  if (own !== undefined) return own;
  const incoming = incomingOf(c as Context<EngineEnv>);
  const claimed = incoming === null ? undefined : claimedCallers.get(incoming);
  if (claimed === undefined) throw new Error("callerOf: the request did not pass the identity gate");
  return claimed;
}

interface Refusal {
  readonly status: 401 | 403 | 500;
  readonly code: string;
  readonly message: string;
  readonly reason?: string | null;
}

/** The gate's verdict on one request: the caller and its label, or the refusal to send. */
export type GateVerdict = { readonly ok: true; readonly caller: Caller; readonly label: string } | { readonly ok: false; readonly answer: Answer };

/** What the request is, for the refusal's log line. */
export interface GateRequest {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
}

/**
 * The gate's check, without the HTTP framework: the caller of `incoming` against `rule`. The
 * middleware below and the direct path of POST /v1/evaluate (direct-evaluate.ts) both use it.
 */
export function gateCheck(auth: CallerAuth, log: Logger): (incoming: IncomingMessage | null, rule: IdentityRule, req: GateRequest) => GateVerdict {
  const refuse = (req: GateRequest, rule: IdentityRule, r: Refusal, remote: string | null): GateVerdict => {
    log.info("request refused", { request_id: req.requestId, method: req.method, path: req.path, status: r.status, code: r.code, reason: r.reason ?? null, rule, remote });
    const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": req.requestId };
    // A connection without a valid SVID will never be served: let the client know it is over.
    if (r.code === "invalid_client_svid") headers["connection"] = "close";
    if (r.code === "unauthenticated") headers["www-authenticate"] = "Bearer";
    if (r.code === "invalid_admin_token") headers["www-authenticate"] = 'Bearer error="invalid_token"';
    const error = r.reason ? { code: r.code, reason: r.reason, message: r.message } : { code: r.code, message: r.message };
    return { ok: false, answer: { status: r.status, body: JSON.stringify({ error }), headers } };
  };

  return (incoming, rule, req) => {
    if (incoming === null) return refuse(req, rule, { status: 500, code: "internal_error", message: "the request has no connection to identify its caller by" }, null);
    const who = auth.identify(incoming, rule);
    if (!who.ok) return refuse(req, rule, { status: who.status, code: who.code, message: who.error, reason: who.reason }, incoming.socket.remoteAddress ?? null);
    const allowed = auth.permit(who.caller, rule);
    if (!allowed.ok) return refuse(req, rule, { status: allowed.status, code: allowed.code, message: allowed.error }, incoming.socket.remoteAddress ?? null);
    return { ok: true, caller: who.caller, label: callerLabelOf(who.caller) };
  };
}

export function identityGate(deps: IdentityGateDeps): MiddlewareHandler<EngineEnv> {
  const check = gateCheck(deps.auth, deps.log);
  return async (c, next) => {
    const requestId = requestIdOf(c);
    c.set("requestId", requestId);
    let claimer: Extension | null = null;
    for (const ext of deps.claimers) {
      if (ext.claims!(c.req.raw)) {
        claimer = ext;
        break;
      }
    }
    const rules = deps.rules();
    const rule = claimer ? rules.claimed(claimer.name) : rules.of(c);
    const incoming = incomingOf(c);
    const verdict = check(incoming, rule, { requestId, method: c.req.method, path: c.req.path });
    if (!verdict.ok) return toResponse(verdict.answer);
    c.set("identity", verdict.caller);
    c.set("caller", verdict.label);
    if (claimer) {
      claimedCallers.set(incoming!, verdict.caller);
      c.set("claimedBy", claimer);
    }
    return next();
  };
}
