// Agent requests to `POST /v1/evaluate`: "may the agent holding this JWT call that destination?"
// Body: {"agent":{"token":"<jwt>"},"destination":{"spiffe_id":"spiffe://...","port":4000}}.
// The token travels in the body, not in Authorization: the caller of the engine (usually the
// destination's sidecar) is authenticated by its own SVID or the admin token, and the agent's
// token is the subject of the decision, not a credential for calling the engine.
import type { AuditRecord } from "../audit/record.js";
import { parseSpiffeId } from "../../compiler/spiffe.js";
import { callerLabel, type Caller } from "./caller.js";
import type { JwtRejectReason, JwtVerifier } from "./jwt.js";

export interface AgentRequest {
  readonly token: string;
  readonly destination: string;
  readonly port: number;
}

export type ParseAgentResult = { readonly ok: true; readonly value: AgentRequest } | { readonly ok: false; readonly path: string; readonly error: string };

/**
 * Scopes an agent needs to reach a destination, from the compiled policy's `agentScopes`; null
 * when no policy declares agent access to it (then the request is denied).
 */
export type RequiredScopes = (destinationSpiffeId: string) => readonly string[] | null;

export type AgentReason =
  | "agent_allowed"
  | "agent_auth_not_configured"
  | "agent_access_undeclared"
  | "agent_scope_missing"
  | `jwt_${JwtRejectReason}`;

export interface AgentDecision {
  readonly allow: boolean;
  readonly reason: AgentReason;
  /** Human-readable detail for the response and logs. */
  readonly detail: string;
  /** Verified `sub`; null when the token was rejected. */
  readonly subject: string | null;
  readonly issuer: string | null;
  readonly scopes: readonly string[];
  readonly requiredScopes: readonly string[] | null;
  readonly missingScopes: readonly string[];
  readonly destination: string;
  readonly port: number;
}

/** True when a `/v1/evaluate` body is an agent request (has an `agent` member). */
export function isAgentRequest(body: unknown): boolean {
  return typeof body === "object" && body !== null && !Array.isArray(body) && "agent" in body;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Validates the body shape; errors carry the JSON pointer of the faulty member (for a 400). */
export function parseAgentRequest(body: unknown): ParseAgentResult {
  if (!isObject(body)) return { ok: false, path: "", error: "the body must be a JSON object" };
  const agent = body["agent"];
  if (!isObject(agent)) return { ok: false, path: "/agent", error: "must be an object {\"token\": \"<jwt>\"}" };
  const token = agent["token"];
  if (typeof token !== "string" || token === "") return { ok: false, path: "/agent/token", error: "must be a non-empty string (the agent's JWT)" };
  for (const k of Object.keys(agent)) if (k !== "token") return { ok: false, path: `/agent/${k}`, error: "unknown member" };
  const dest = body["destination"];
  if (!isObject(dest)) return { ok: false, path: "/destination", error: "must be an object {\"spiffe_id\": ..., \"port\": ...}" };
  const id = dest["spiffe_id"];
  if (typeof id !== "string") return { ok: false, path: "/destination/spiffe_id", error: "must be a string" };
  const parsed = parseSpiffeId(id);
  if (!parsed.ok) return { ok: false, path: "/destination/spiffe_id", error: parsed.error };
  const port = dest["port"];
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return { ok: false, path: "/destination/port", error: "must be an integer from 1 to 65535" };
  }
  for (const k of Object.keys(dest)) if (k !== "spiffe_id" && k !== "port") return { ok: false, path: `/destination/${k}`, error: "unknown member" };
  for (const k of Object.keys(body)) if (k !== "agent" && k !== "destination") return { ok: false, path: `/${k}`, error: "unknown member" };
  return { ok: true, value: { token, destination: id, port } };
}

/** The granted scopes must include every required one. */
export function missingScopes(granted: readonly string[], required: readonly string[]): string[] {
  const have = new Set(granted);
  return required.filter((s) => !have.has(s));
}

/** Verifies the agent's token and checks its scopes against the destination's requirement. */
export async function decideAgentAccess(req: AgentRequest, verifier: JwtVerifier | null, requiredScopes: RequiredScopes): Promise<AgentDecision> {
  const base = { destination: req.destination, port: req.port };
  if (!verifier) {
    return { ...base, allow: false, reason: "agent_auth_not_configured", detail: "agent JWTs are not accepted: ZT_JWKS_URL is not set", subject: null, issuer: null, scopes: [], requiredScopes: null, missingScopes: [] };
  }
  const v = await verifier.verify(req.token);
  if (!v.ok) {
    return { ...base, allow: false, reason: `jwt_${v.reason}`, detail: v.detail, subject: null, issuer: null, scopes: [], requiredScopes: null, missingScopes: [] };
  }
  let required: readonly string[] | null;
  try {
    required = requiredScopes(req.destination);
  } catch (e) {
    // Fail closed: an error in the policy lookup is a deny with its reason, never an allow.
    return { ...base, allow: false, reason: "agent_access_undeclared", detail: `scope lookup failed: ${(e as Error).message}`, subject: v.subject, issuer: v.issuer, scopes: v.scopes, requiredScopes: null, missingScopes: [] };
  }
  const who = { subject: v.subject, issuer: v.issuer, scopes: v.scopes };
  if (required === null) {
    return { ...base, ...who, allow: false, reason: "agent_access_undeclared", detail: `no policy declares agent access to ${req.destination}`, requiredScopes: null, missingScopes: [] };
  }
  const missing = missingScopes(v.scopes, required);
  if (missing.length) {
    return { ...base, ...who, allow: false, reason: "agent_scope_missing", detail: `the token lacks scope(s) ${missing.join(", ")} required by ${req.destination}`, requiredScopes: required, missingScopes: missing };
  }
  return { ...base, ...who, allow: true, reason: "agent_allowed", detail: `scopes ${required.join(", ") || "(none required)"} granted`, requiredScopes: required, missingScopes: [] };
}

/**
 * A caller label (callerLabel's output, or null when the caller is unknown) joined with the
 * agent's verified subject: "mtls:<asker>+jwt:<sub>"; null when neither is known.
 */
export function agentCallerLabel(label: string | null, subject: string | null): string | null {
  if (subject === null) return label;
  return label === null || label === "" ? `jwt:${subject}` : `${label}+jwt:${subject}`;
}

/**
 * The decision-specific fields of the AuditRecord for an agent request; the engine adds
 * timestamp, latency, ids, mode, version and origin. `caller` is the Caller itself, or its
 * label as the engine's evaluate route carries it (see callerLabel).
 */
export function agentAuditFields(
  d: AgentDecision,
  caller: Caller | string | null,
): Pick<AuditRecord, "decision" | "source" | "destination" | "operator" | "target" | "policy_matched" | "reason" | "caller"> {
  return {
    decision: d.allow ? "ALLOW" : "DENY",
    source: null,
    destination: { spiffe_id: d.destination, port: d.port },
    operator: null,
    target: null,
    policy_matched: null,
    reason: d.reason,
    caller: caller !== null && typeof caller === "object" ? callerLabel(caller, d.subject) : agentCallerLabel(caller, d.subject),
  };
}
