// Who is calling the engine, and what they may ask. The caller's SPIFFE ID comes from its
// verified client certificate, never from the request body; the admin token comes from
// `Authorization: Bearer`. A caller may evaluate requests whose source is itself, unless it is a
// trusted evaluator (sidecar gateways, the operator proxy) that asks on behalf of others.
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { PeerVerifier } from "./peer.js";

export interface Caller {
  /** "mtls": identified by its client SVID; "plaintext": loopback without TLS (development). */
  readonly transport: "mtls" | "plaintext";
  /** Verified SPIFFE ID of the client certificate; null in plaintext mode. */
  readonly spiffeId: string | null;
  /** True when the request carried the configured admin token. */
  readonly adminToken: boolean;
  readonly remoteAddress: string | null;
}

export type CallerRejectCode = "invalid_client_svid" | "invalid_admin_token" | "malformed_authorization";

export type IdentifyResult =
  | { readonly ok: true; readonly caller: Caller }
  | { readonly ok: false; readonly status: 401; readonly code: CallerRejectCode; readonly error: string };

export type AuthzResult = { readonly ok: true } | { readonly ok: false; readonly status: 403; readonly code: string; readonly error: string };

export interface CallerAuthOptions {
  /** Null in plaintext mode. */
  readonly peer: PeerVerifier | null;
  /** The admin bearer token; null disables token-based admin. */
  readonly adminToken: string | null;
  readonly adminSpiffeIds: ReadonlySet<string>;
  readonly trustedEvaluators: ReadonlySet<string>;
}

/** What identify() needs from a request: Node's IncomingMessage fits (Hono: c.env.incoming). */
export interface RequestLike {
  readonly headers: IncomingHttpHeaders;
  readonly socket: Socket;
}

export interface CallerAuth {
  identify(req: RequestLike): IdentifyResult;
  /** Service request `source` -> the caller must be that source, a trusted evaluator, or admin. */
  authorizeEvaluate(caller: Caller, requestedSource: string): AuthzResult;
  /** Agent request to `destination` -> the caller must be that destination (its sidecar), a trusted evaluator, or admin. */
  authorizeAgentEvaluate(caller: Caller, destination: string): AuthzResult;
  /**
   * Operator request (BeyondCorp) -> only the operator proxy asks these, so the caller must be a
   * trusted evaluator or admin: a workload must not learn or probe what humans may do.
   */
  authorizeOperatorEvaluate(caller: Caller): AuthzResult;
  /** True when every evaluation question is open to `caller` (plaintext, admin, trusted evaluator). */
  mayEvaluateAny(caller: Caller): boolean;
  isAdmin(caller: Caller): boolean;
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** The audit `caller` string: "mtls:<spiffe id>", "admin-token", "jwt:<sub>", "plaintext:<addr>", joined by "+". */
export function callerLabel(caller: Caller, agentSubject: string | null = null): string {
  const parts: string[] = [];
  if (caller.spiffeId) parts.push(`mtls:${caller.spiffeId}`);
  else if (caller.transport === "plaintext") parts.push(`plaintext:${caller.remoteAddress ?? "unknown"}`);
  if (caller.adminToken) parts.push("admin-token");
  if (agentSubject !== null) parts.push(`jwt:${agentSubject}`);
  return parts.join("+");
}

export function createCallerAuth(opts: CallerAuthOptions): CallerAuth {
  const tokenDigest = opts.adminToken ? digest(opts.adminToken) : null;

  const isAdmin = (c: Caller): boolean => c.adminToken || (c.spiffeId !== null && opts.adminSpiffeIds.has(c.spiffeId));
  const trusted = (c: Caller): boolean => c.spiffeId !== null && opts.trustedEvaluators.has(c.spiffeId);

  return {
    identify(req: RequestLike): IdentifyResult {
      let spiffeId: string | null = null;
      if (opts.peer) {
        const r = opts.peer.verify(req.socket as TLSSocket);
        if (!r.ok) return { ok: false, status: 401, code: "invalid_client_svid", error: `client X.509-SVID rejected (${r.code}): ${r.error}` };
        spiffeId = r.spiffeId;
      }
      let adminToken = false;
      const auth = req.headers.authorization;
      if (auth !== undefined) {
        const m = /^Bearer ([\x21-\x7e]+)$/.exec(auth);
        if (!m) return { ok: false, status: 401, code: "malformed_authorization", error: 'the Authorization header must be "Bearer <admin token>"' };
        // Compare digests: constant time regardless of the presented length.
        if (!tokenDigest || !timingSafeEqual(digest(m[1]!), tokenDigest)) {
          return { ok: false, status: 401, code: "invalid_admin_token", error: "the bearer token is not the admin token (agent JWTs go in the request body: agent.token)" };
        }
        adminToken = true;
      }
      return {
        ok: true,
        caller: { transport: opts.peer ? "mtls" : "plaintext", spiffeId, adminToken, remoteAddress: req.socket.remoteAddress ?? null },
      };
    },

    authorizeEvaluate(caller: Caller, requestedSource: string): AuthzResult {
      if (caller.transport === "plaintext" || isAdmin(caller) || trusted(caller)) return { ok: true };
      if (caller.spiffeId === requestedSource) return { ok: true };
      return {
        ok: false,
        status: 403,
        code: "source_not_caller",
        error: `caller ${caller.spiffeId} may only evaluate requests whose source is itself, not ${requestedSource} (it is not in ZT_TRUSTED_EVALUATORS)`,
      };
    },

    authorizeAgentEvaluate(caller: Caller, destination: string): AuthzResult {
      if (caller.transport === "plaintext" || isAdmin(caller) || trusted(caller)) return { ok: true };
      if (caller.spiffeId === destination) return { ok: true };
      return {
        ok: false,
        status: 403,
        code: "destination_not_caller",
        error: `caller ${caller.spiffeId} may only evaluate agent requests to itself, not to ${destination} (it is not in ZT_TRUSTED_EVALUATORS)`,
      };
    },

    authorizeOperatorEvaluate(caller: Caller): AuthzResult {
      if (caller.transport === "plaintext" || isAdmin(caller) || trusted(caller)) return { ok: true };
      return {
        ok: false,
        status: 403,
        code: "operator_not_trusted",
        error: `caller ${caller.spiffeId} may not evaluate operator requests: only ZT_TRUSTED_EVALUATORS (the operator proxy) and admins may`,
      };
    },

    mayEvaluateAny: (caller: Caller): boolean => caller.transport === "plaintext" || isAdmin(caller) || trusted(caller),

    isAdmin,
  };
}
