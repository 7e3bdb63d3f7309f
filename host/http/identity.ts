// Connects the identity layer (host/identity, docs/identity.md) to the engine: the caller
// authentication the identity gate uses for every route (route-identity.ts), agent JWT
// verification, the mTLS listener whose connections are validated at the handshake and whose
// SVID is rotated in place, and the identity's readiness on /healthz. Also what a caller may
// ask POST /v1/evaluate about, item by item.
import type { Server } from "node:http";
import { Server as TlsServer } from "node:tls";
import type { EvaluateItem } from "../engine/evaluate-input.js";
import type { Caller, CallerAuth, Identity } from "../identity/index.js";
import type { EngineOptions } from "./server.js";

export type IdentityEngineOptions = Required<Pick<EngineOptions, "auth" | "agentVerifier" | "listenOptions" | "onApiServer" | "beforeListen" | "identityStatus">>;

/** Where in the body an item's authorisation question lives (for the 403's `path`). */
function pathOf(item: EvaluateItem, index: number, batch: boolean): string {
  const at = batch ? `$[${index}]` : "$";
  if (item.kind === "service") return `${at}.source.spiffe_id`;
  if (item.kind === "agent") return `${at}.destination.spiffe_id`;
  return `${at}.operator`;
}

export interface ItemRefusal {
  readonly status: 401 | 403;
  readonly code: string;
  readonly message: string;
  readonly path: string;
}

/**
 * May `caller` ask about every item? A workload asks about its own source (service requests)
 * or about agent calls to itself; only trusted evaluators and admins ask about operators or
 * about others. The first item refused answers for the request.
 */
export function authorizeItems(auth: CallerAuth, caller: Caller, items: readonly EvaluateItem[], batch: boolean): ItemRefusal | null {
  // Trusted evaluators, admins and plaintext callers may ask anything: skip the per-item loop.
  if (auth.mayEvaluateAny(caller)) return null;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const r = it.kind === "service" ? auth.authorizeEvaluate(caller, it.source.spiffe_id) : it.kind === "agent" ? auth.authorizeAgentEvaluate(caller, it.destination.spiffe_id) : auth.authorizeOperatorEvaluate(caller);
    if (!r.ok) return { status: r.status, code: r.code, message: r.error, path: pathOf(it, i, batch) };
  }
  return null;
}

/**
 * The startEngine options that put `identity` in front of the API. In plaintext mode callers
 * are labelled `plaintext:<address>` and only admin routes are restricted (the token).
 */
export function identityEngineOptions(identity: Identity): IdentityEngineOptions {
  return {
    auth: identity.auth,
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
