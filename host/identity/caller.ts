// Who is calling the engine, and what they may ask. The caller's SPIFFE ID comes from its
// connection's client certificate (validated once per connection, peer.ts), never from the
// request body; the admin token comes from `Authorization: Bearer`. The identity rules say what
// a route needs (svid, reader, metrics, admin, own); a caller may evaluate requests whose source
// is itself, unless it is a trusted evaluator (sidecar gateways, the operator proxy).
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { PeerRejectCode, PeerVerdict, PeerVerifier } from "./peer.js";

/**
 * What a route requires of its caller (the table in host/http/route-identity.ts; docs/identity.md
 * "Routes and identities"):
 * - `svid`: a valid X.509-SVID on the connection (any trust domain with a bundle);
 * - `reader`: an SVID from a trust domain listed for readers (ZT_READER_TRUST_DOMAINS), or an admin;
 * - `metrics`: what ZT_METRICS_ACCESS says (`svid`, `reader` or `admin`);
 * - `admin`: an SVID on the connection and the admin token or an admin SPIFFE ID;
 * - `own`: nothing at the connection; the handler authenticates the request itself (the
 *   operator proxy's OIDC). Its Authorization header is left to the handler.
 * Without mTLS (plaintext, loopback only) every rule but `admin` admits everyone; `admin` needs the token.
 */
export type IdentityRule = "svid" | "reader" | "metrics" | "admin" | "own";
export const IDENTITY_RULES: readonly IdentityRule[] = ["svid", "reader", "metrics", "admin", "own"];
export type MetricsAccess = "svid" | "reader" | "admin";

export interface Caller {
  /**
   * "mtls": a valid client SVID; "plaintext": loopback without TLS (development); "none": a TLS
   * connection without a valid SVID, which only reaches `own` routes.
   */
  readonly transport: "mtls" | "plaintext" | "none";
  /** Verified SPIFFE ID of the client certificate; null unless transport is "mtls". */
  readonly spiffeId: string | null;
  readonly trustDomain: string | null;
  /** True when the request carried the configured admin token (never read for `own` routes). */
  readonly adminToken: boolean;
  readonly remoteAddress: string | null;
}

export type CallerRejectCode = "invalid_client_svid" | "invalid_admin_token" | "malformed_authorization";

export type IdentifyResult =
  | { readonly ok: true; readonly caller: Caller }
  | {
      readonly ok: false;
      readonly status: 401;
      readonly code: CallerRejectCode;
      /** For invalid_client_svid: the X.509-SVID rule the connection's certificate breaks. */
      readonly reason: PeerRejectCode | null;
      readonly error: string;
    };

export type AuthzResult = { readonly ok: true } | { readonly ok: false; readonly status: 401 | 403; readonly code: string; readonly error: string };

export interface CallerAuthOptions {
  /** Null in plaintext mode. */
  readonly peer: PeerVerifier | null;
  /** The admin bearer token; null disables token-based admin. */
  readonly adminToken: string | null;
  readonly adminSpiffeIds: ReadonlySet<string>;
  readonly trustedEvaluators: ReadonlySet<string>;
  /** Trust domains whose SVIDs may read policies and the module (default: none but admins). */
  readonly readerTrustDomains?: () => ReadonlySet<string>;
  /** What `GET /metrics` on the API port needs (default `reader`). */
  readonly metricsAccess?: MetricsAccess;
}

/** What identify() needs from a request: Node's IncomingMessage fits (Hono: c.env.incoming). */
export interface RequestLike {
  readonly headers: IncomingHttpHeaders;
  readonly socket: Socket;
}

export interface CallerAuth {
  /**
   * Who sent `req`: the verdict of its connection (taken once, at the handshake) and, unless the
   * rule is `own`, its Authorization header. A connection without a valid SVID is refused for
   * every rule but `own`.
   */
  identify(req: RequestLike, rule?: IdentityRule): IdentifyResult;
  /** Does `caller` satisfy `rule`? 401 when credentials are missing, 403 when they do not suffice. */
  permit(caller: Caller, rule: IdentityRule): AuthzResult;
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

/** The audit `caller` string: "mtls:<spiffe id>", "admin-token", "jwt:<sub>", "plaintext:<addr>", "anonymous:<addr>", joined by "+". */
export function callerLabel(caller: Caller, agentSubject: string | null = null): string {
  const parts: string[] = [];
  if (caller.spiffeId) parts.push(`mtls:${caller.spiffeId}`);
  else if (caller.transport === "plaintext") parts.push(`plaintext:${caller.remoteAddress ?? "unknown"}`);
  else if (caller.transport === "none") parts.push(`anonymous:${caller.remoteAddress ?? "unknown"}`);
  if (caller.adminToken) parts.push("admin-token");
  if (agentSubject !== null) parts.push(`jwt:${agentSubject}`);
  return parts.join("+");
}

const labels = new WeakMap<Caller, string>();

/** callerLabel(caller), built once per Caller object (identify gives one per connection to requests without credentials). */
export function callerLabelOf(caller: Caller): string {
  let label = labels.get(caller);
  if (label === undefined) {
    label = callerLabel(caller);
    labels.set(caller, label);
  }
  return label;
}

export function createCallerAuth(opts: CallerAuthOptions): CallerAuth {
  const tokenDigest = opts.adminToken ? digest(opts.adminToken) : null;

  const isAdmin = (c: Caller): boolean => c.adminToken || (c.spiffeId !== null && opts.adminSpiffeIds.has(c.spiffeId));
  const trusted = (c: Caller): boolean => c.spiffeId !== null && opts.trustedEvaluators.has(c.spiffeId);
  const metricsAccess = opts.metricsAccess ?? "reader";
  const readers = opts.readerTrustDomains ?? ((): ReadonlySet<string> => new Set());

  const permit = (c: Caller, rule: Exclude<IdentityRule, "metrics">): AuthzResult => {
    if (rule === "own") return { ok: true };
    // identify() refused every connection without an SVID already, except for `own` routes.
    if (c.transport === "none") return { ok: false, status: 401, code: "invalid_client_svid", error: "this route needs an X.509-SVID on the connection" };
    if (rule === "admin") {
      if (isAdmin(c)) return { ok: true };
      const who = c.spiffeId === null ? "" : ` (${c.spiffeId} is not in ZT_ADMIN_SPIFFE_IDS)`;
      return { ok: false, status: 401, code: "unauthenticated", error: `this route needs the admin token (Authorization: Bearer) or an admin SPIFFE ID${who}` };
    }
    if (c.transport === "plaintext" || rule === "svid") return { ok: true };
    if (isAdmin(c) || (c.trustDomain !== null && readers().has(c.trustDomain))) return { ok: true };
    return { ok: false, status: 403, code: "trust_domain_not_reader", error: `SVIDs of trust domain "${c.trustDomain}" may not read this (it is not in ZT_READER_TRUST_DOMAINS)` };
  };

  // A request without credentials is identified by its connection alone: every such request on
  // it gets the same Caller (one object, so its label is built once: callerLabelOf), for as long
  // as the peer verdict is the same one (peer.ts keeps it per connection until the path expires
  // or the bundles change; plaintext has none).
  const byConnection = new WeakMap<Socket, { readonly verdict: PeerVerdict | null; readonly result: IdentifyResult }>();

  return {
    identify(req: RequestLike, rule: IdentityRule = "svid"): IdentifyResult {
      const verdict = opts.peer ? opts.peer.verify(req.socket as TLSSocket) : null;
      // `own` routes authenticate themselves: their Authorization header is not ours to judge.
      const auth = rule === "own" ? undefined : req.headers.authorization;
      // An empty header carries no credentials: the same as none.
      const bare = rule !== "own" && (auth === undefined || auth.trim() === "");
      if (bare) {
        const hit = byConnection.get(req.socket);
        if (hit !== undefined && hit.verdict === verdict) return hit.result;
      }
      const remoteAddress = req.socket.remoteAddress ?? null;
      let transport: Caller["transport"] = "plaintext";
      let spiffeId: string | null = null;
      let trustDomain: string | null = null;
      if (verdict !== null) {
        if (verdict.ok) {
          transport = "mtls";
          spiffeId = verdict.spiffeId;
          trustDomain = verdict.trustDomain;
        } else if (rule === "own") {
          transport = "none";
        } else {
          return { ok: false, status: 401, code: "invalid_client_svid", reason: verdict.code, error: `the connection's client certificate is not a valid X.509-SVID (${verdict.code}): ${verdict.error}` };
        }
      }
      if (rule === "own") return { ok: true, caller: { transport, spiffeId, trustDomain, adminToken: false, remoteAddress } };
      if (bare) {
        const result: IdentifyResult = { ok: true, caller: { transport, spiffeId, trustDomain, adminToken: false, remoteAddress } };
        byConnection.set(req.socket, { verdict, result });
        return result;
      }
      const m = /^Bearer ([\x21-\x7e]+)$/.exec(auth!);
      if (!m) return { ok: false, status: 401, code: "malformed_authorization", reason: null, error: 'the Authorization header must be "Bearer <admin token>"' };
      // Compare digests: constant time regardless of the presented length.
      if (!tokenDigest || !timingSafeEqual(digest(m[1]!), tokenDigest)) {
        return { ok: false, status: 401, code: "invalid_admin_token", reason: null, error: "the bearer token is not the admin token (agent JWTs go in the request body: agent.token)" };
      }
      return { ok: true, caller: { transport, spiffeId, trustDomain, adminToken: true, remoteAddress } };
    },

    permit(caller: Caller, rule: IdentityRule): AuthzResult {
      return permit(caller, rule === "metrics" ? metricsAccess : rule);
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
