// The one middleware that enforces route-identity.ts: the first thing every request on the
// API port meets, before the evaluate hot path, extension claims and every other route. It
// reads the caller from the connection (validated once, at the handshake: host/identity/peer.ts)
// and the Authorization header, checks the rule of the route that will answer, and either
// refuses (401/403 with the reason; the log line names the peer's address) or hands on with
// the caller in `c.var.identity` (and `callerOf(c)` for apps that extensions serve on claim).
import type { IncomingMessage } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "../common/logger.js";
import { callerLabel, type Caller, type CallerAuth, type IdentityRule } from "../identity/caller.js";
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

export function identityGate(deps: IdentityGateDeps): MiddlewareHandler<EngineEnv> {
  const { auth, log } = deps;

  const refuse = (c: Context<EngineEnv>, requestId: string, rule: IdentityRule, r: Refusal, remote: string | null): Response => {
    log.info("request refused", { request_id: requestId, method: c.req.method, path: c.req.path, status: r.status, code: r.code, reason: r.reason ?? null, rule, remote });
    const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": requestId };
    // A connection without a valid SVID will never be served: let the client know it is over.
    if (r.code === "invalid_client_svid") headers["connection"] = "close";
    if (r.code === "unauthenticated") headers["www-authenticate"] = "Bearer";
    if (r.code === "invalid_admin_token") headers["www-authenticate"] = 'Bearer error="invalid_token"';
    const error = r.reason ? { code: r.code, reason: r.reason, message: r.message } : { code: r.code, message: r.message };
    return new Response(JSON.stringify({ error }), { status: r.status, headers });
  };

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
    if (incoming === null) return refuse(c, requestId, rule, { status: 500, code: "internal_error", message: "the request has no connection to identify its caller by" }, null);
    const remote = incoming.socket.remoteAddress ?? null;
    const who = auth.identify(incoming, rule);
    if (!who.ok) return refuse(c, requestId, rule, { status: who.status, code: who.code, message: who.error, reason: who.reason }, remote);
    const allowed = auth.permit(who.caller, rule);
    if (!allowed.ok) return refuse(c, requestId, rule, { status: allowed.status, code: allowed.code, message: allowed.error }, remote);
    c.set("identity", who.caller);
    c.set("caller", callerLabel(who.caller));
    if (claimer) {
      claimedCallers.set(incoming, who.caller);
      c.set("claimedBy", claimer);
    }
    return next();
  };
}
