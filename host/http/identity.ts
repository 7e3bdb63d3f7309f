// Connects the identity layer (host/identity, docs/identity.md) to the engine's hooks
// (startEngine options): who is calling POST /v1/evaluate and what it may ask, admin SPIFFE
// IDs next to the admin token, agent JWT verification, the mTLS listener with its SVID
// rotated in place, and the identity's readiness on /healthz.
import type { IncomingMessage, Server } from "node:http";
import { Server as TlsServer } from "node:tls";
import type { Context } from "hono";
import type { AdminAuthenticator } from "./auth.js";
import type { EngineEnv } from "./context.js";
import type { EvaluateItem } from "../engine/evaluate-input.js";
import { callerLabel, type Caller, type Identity } from "../identity/index.js";
import type { EvaluateAuthorize, EvaluateIdentify } from "./routes/evaluate.js";
import type { EngineOptions } from "./server.js";

export type IdentityEngineOptions = Required<
  Pick<EngineOptions, "authenticators" | "identifyEvaluateCaller" | "authorizeEvaluate" | "agentVerifier" | "listenOptions" | "onApiServer" | "beforeListen" | "identityStatus">
>;

function jsonError(status: number, code: string, message: string, path?: string): Response {
  const error = path === undefined ? { code, message } : { code, message, path };
  return new Response(JSON.stringify({ error }), { status, headers: { "content-type": "application/json" } });
}

function incomingOf(c: Context<EngineEnv>): IncomingMessage | null {
  // Always there behind @hono/node-server; absent only when the app is driven without a socket.
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming ?? null;
}

/** Where in the body an item's authorisation question lives (for the 403's `path`). */
function pathOf(item: EvaluateItem, index: number, batch: boolean): string {
  const at = batch ? `$[${index}]` : "$";
  if (item.kind === "service") return `${at}.source.spiffe_id`;
  if (item.kind === "agent") return `${at}.destination.spiffe_id`;
  return `${at}.operator`;
}

/**
 * The startEngine options that put `identity` in front of the API. In plaintext mode they
 * still label callers (`plaintext:<address>`) and check bearer tokens; only mTLS callers are
 * restricted.
 */
export function identityEngineOptions(identity: Identity): IdentityEngineOptions {
  const { auth } = identity;
  // identify() runs first on POST /v1/evaluate; authorize() needs the Caller, not only its label.
  const callers = new WeakMap<IncomingMessage, Caller>();

  const identifyRequest = (c: Context<EngineEnv>): Caller | Response => {
    const incoming = incomingOf(c);
    if (incoming === null) return jsonError(401, "unauthenticated", "the request has no connection to identify its caller by");
    const known = callers.get(incoming);
    if (known !== undefined) return known;
    const r = auth.identify(incoming);
    if (!r.ok) return jsonError(r.status, r.code, r.error);
    callers.set(incoming, r.caller);
    return r.caller;
  };

  const identifyEvaluateCaller: EvaluateIdentify = (c) => {
    const who = identifyRequest(c);
    return who instanceof Response ? who : callerLabel(who);
  };

  const authorizeEvaluate: EvaluateAuthorize = (_label, items, c, batch) => {
    const who = identifyRequest(c);
    if (who instanceof Response) return who;
    // Trusted evaluators, admins and plaintext callers may ask anything: skip the per-item loop.
    if (auth.mayEvaluateAny(who)) return null;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const r = it.kind === "service" ? auth.authorizeEvaluate(who, it.source.spiffe_id) : it.kind === "agent" ? auth.authorizeAgentEvaluate(who, it.destination.spiffe_id) : auth.authorizeOperatorEvaluate(who);
      if (!r.ok) return jsonError(r.status, r.code, r.error, pathOf(it, i, !!batch));
    }
    return null;
  };

  // Admin actions by SPIFFE ID (ZT_ADMIN_SPIFFE_IDS); the bearer token authenticator comes first.
  const spiffeAdmin: AdminAuthenticator = (c) => {
    const who = identifyRequest(c);
    if (who instanceof Response || who.spiffeId === null) return null;
    return identity.config.adminSpiffeIds.has(who.spiffeId) ? `mtls:${who.spiffeId}` : null;
  };

  return {
    authenticators: [spiffeAdmin],
    identifyEvaluateCaller,
    authorizeEvaluate,
    agentVerifier: identity.jwt,
    // Called after beforeListen: in SPIRE mode the TLS identity exists only then.
    listenOptions: () => identity.serveOptions(),
    onApiServer: (server: Server) => {
      if ((server as unknown) instanceof TlsServer) identity.attach(server as unknown as TlsServer);
    },
    beforeListen: () => identity.source.ready(),
    identityStatus: () => identity.source.status(),
  };
}
