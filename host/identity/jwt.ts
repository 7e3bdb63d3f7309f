// Agent JWTs (HIP-0044 "Agent-to-Service Authentication"): IAM issues 15-minute tokens; the
// engine verifies them against IAM's JWKS (cached an hour; an unknown `kid` triggers a refetch
// at most once per cooldown), requires `exp` and `sub`, checks issuer and audience, bounds the
// lifetime, and reports every rejection with a precise reason.
import { createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify, errors, type FetchImplementation, type JWTPayload } from "jose";
import type { JwtConfig } from "./config.js";
import type { IdentityMetrics } from "./metrics.js";
import type { IdentityLog } from "./tls.js";
import { unstorableText } from "../audit/storable-text.js";

/** Longest `sub` accepted: it is stored in the audit record's caller (at most 2,048 characters with the caller's SPIFFE ID). */
const MAX_SUBJECT = 1024;

export type JwtRejectReason =
  | "malformed_token"
  | "unsupported_critical_header"
  | "algorithm_not_allowed"
  | "unknown_kid"
  | "ambiguous_kid"
  | "bad_signature"
  | "jwks_unavailable"
  | "token_expired"
  | "token_not_yet_valid"
  | "iat_in_future"
  | "missing_exp"
  | "missing_subject"
  | "issuer_mismatch"
  | "audience_mismatch"
  | "invalid_claim"
  | "lifetime_exceeds_max";

export type JwtResult =
  | { readonly ok: true; readonly subject: string; readonly issuer: string; readonly scopes: readonly string[]; readonly expiresAt: Date; readonly claims: JWTPayload }
  | { readonly ok: false; readonly reason: JwtRejectReason; readonly detail: string };

export interface JwtVerifier {
  verify(token: string): Promise<JwtResult>;
}

/** Tokens longer than this are rejected unparsed (IAM tokens are well under 4 KiB). */
export const MAX_TOKEN_BYTES = 16 * 1024;

export type JwtVerifierOptions = Pick<JwtConfig, "jwksUrl" | "issuer" | "audience" | "maxLifetimeSec" | "cacheTtlMs"> &
  Partial<Pick<JwtConfig, "cooldownMs" | "fetchTimeoutMs" | "clockToleranceSec" | "algorithms">> & {
    readonly metrics?: IdentityMetrics;
    readonly now?: () => Date;
    /** How the JWKS is fetched (e.g. trusting an internal CA); the global fetch by default. */
    readonly fetch?: FetchImplementation;
    /** Where JWKS fetch failures are told in full (the caller's answer gets no address). */
    readonly log?: IdentityLog;
  };

/**
 * Scopes of a token: `scope` (space-separated, RFC 8693 / RFC 9068), `scp` (string or array,
 * common in IAMs) and `scopes` (array) are all read; the union is returned, deduplicated.
 */
export function tokenScopes(claims: JWTPayload): string[] {
  const out = new Set<string>();
  const add = (v: unknown): void => {
    if (typeof v === "string") for (const s of v.split(" ")) if (s !== "") out.add(s);
    if (Array.isArray(v)) for (const s of v) if (typeof s === "string" && s !== "") out.add(s);
  };
  add(claims["scope"]);
  add(claims["scp"]);
  add(claims["scopes"]);
  return [...out];
}

function reject(reason: JwtRejectReason, detail: string): JwtResult {
  return { ok: false, reason, detail };
}

function classify(e: unknown): JwtResult {
  if (e instanceof errors.JWTExpired) return reject("token_expired", e.message);
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === "missing") {
      if (e.claim === "exp") return reject("missing_exp", 'the token has no "exp" claim; agent tokens must expire');
      if (e.claim === "sub") return reject("missing_subject", 'the token has no "sub" claim');
      if (e.claim === "iss") return reject("issuer_mismatch", 'the token has no "iss" claim');
      if (e.claim === "aud") return reject("audience_mismatch", 'the token has no "aud" claim');
    }
    if (e.claim === "iss") return reject("issuer_mismatch", `unexpected issuer ${JSON.stringify(e.payload.iss)}`);
    if (e.claim === "aud") return reject("audience_mismatch", `unexpected audience ${JSON.stringify(e.payload.aud)}`);
    if (e.claim === "nbf") return reject("token_not_yet_valid", `the token is not valid before ${new Date(Number(e.payload.nbf) * 1000).toISOString()}`);
    return reject("invalid_claim", e.message);
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return reject("algorithm_not_allowed", e.message);
  if (e instanceof errors.JWKSNoMatchingKey) return reject("unknown_kid", "no key of the JWKS matches the token's kid and alg (after a refetch, or within the refetch cooldown)");
  if (e instanceof errors.JWKSMultipleMatchingKeys) return reject("ambiguous_kid", "several JWKS keys match the token's kid and alg");
  if (e instanceof errors.JWSSignatureVerificationFailed) return reject("bad_signature", "the token's signature does not verify with the issuer's key");
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) return reject("malformed_token", e.message);
  if (e instanceof errors.JOSENotSupported) return reject("algorithm_not_allowed", e.message);
  if (e instanceof errors.JWKSTimeout) return reject("jwks_unavailable", "fetching the issuer's JWKS timed out");
  if (e instanceof errors.JWKSInvalid || e instanceof errors.JWKInvalid) return reject("jwks_unavailable", "the issuer's JWKS is not a valid key set");
  // Non-200 answers (JOSEError) and network failures (fetch's TypeError) both mean no keys. The
  // cause names the JWKS address: it goes to the log (see createJwtVerifier), not to the caller.
  return reject("jwks_unavailable", "the issuer's JWKS could not be fetched");
}

/** The underlying error of a failed JWKS fetch, for the log. */
function fetchProblem(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : e.message;
}

/**
 * A `crit` header names extensions the recipient must understand or reject (RFC 7515 4.1.11);
 * this verifier understands none, so any `crit` is refused before the signature is checked.
 */
function criticalHeader(token: string): string | null {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    return null; // jwtVerify reports the malformed header
  }
  if (!("crit" in header)) return null;
  const crit = header["crit"];
  const names = Array.isArray(crit) ? crit.map(String).join(", ") : JSON.stringify(crit);
  return `the token's header marks extension(s) ${names} as critical (crit); none is supported`;
}

export function createJwtVerifier(opts: JwtVerifierOptions): JwtVerifier {
  const jwks = createRemoteJWKSet(opts.jwksUrl, {
    cacheMaxAge: opts.cacheTtlMs,
    cooldownDuration: opts.cooldownMs ?? 30_000,
    timeoutDuration: opts.fetchTimeoutMs ?? 5000,
    ...(opts.fetch ? { [customFetch]: opts.fetch } : {}),
  });
  const tolerance = opts.clockToleranceSec ?? 5;
  const algorithms = [...(opts.algorithms ?? ["RS256", "PS256", "ES256", "ES384", "EdDSA"])];
  const now = opts.now ?? (() => new Date());

  // A JWKS outage fails every agent request: log the cause with the address once per
  // distinct message and minute, not once per request.
  const logged = new Map<string, number>();
  const logFetch = (problem: string): void => {
    if (!opts.log) return;
    const t = Date.now();
    if ((logged.get(problem) ?? -Infinity) > t - 60_000) return;
    logged.set(problem, t);
    if (logged.size > 64) logged.delete(logged.keys().next().value!);
    opts.log("error", "agent JWT: the JWKS could not be fetched", { jwks_url: opts.jwksUrl.href, error: problem });
  };

  const count = (r: JwtResult): JwtResult => {
    opts.metrics?.jwtVerifications.inc({ result: r.ok ? "ok" : r.reason });
    return r;
  };

  async function verify(token: string): Promise<JwtResult> {
    if (typeof token !== "string" || token.length === 0) return reject("malformed_token", "the token is empty");
    if (token.length > MAX_TOKEN_BYTES) return reject("malformed_token", `the token is longer than ${MAX_TOKEN_BYTES} bytes`);
    if (token.split(".").length !== 3) return reject("malformed_token", "the token is not a compact JWS (header.payload.signature)");
    const crit = criticalHeader(token);
    if (crit !== null) return reject("unsupported_critical_header", crit);
    const at = now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: opts.issuer,
        audience: [...opts.audience],
        algorithms,
        clockTolerance: tolerance,
        currentDate: at,
        requiredClaims: ["exp", "sub"],
      }));
    } catch (e) {
      const r = classify(e);
      if (!r.ok && r.reason === "jwks_unavailable") logFetch(fetchProblem(e));
      return r;
    }
    const t = at.getTime() / 1000;
    const exp = payload.exp!;
    if (typeof payload.sub !== "string" || payload.sub === "") return reject("missing_subject", 'the "sub" claim is empty');
    // The subject goes into the audit record (caller): it must be text the audit trail can store.
    const subProblem = payload.sub.length > MAX_SUBJECT ? `must be at most ${MAX_SUBJECT} characters` : unstorableText(payload.sub);
    if (subProblem !== null) return reject("invalid_claim", `the "sub" claim ${subProblem}`);
    if (payload.iat !== undefined && payload.iat > t + tolerance) {
      return reject("iat_in_future", `the token claims to be issued at ${new Date(payload.iat * 1000).toISOString()}, in the future`);
    }
    // Bound both the declared lifetime and what is left of it: a token without `iat` cannot
    // claim a short life it does not have.
    if (payload.iat !== undefined && exp - payload.iat > opts.maxLifetimeSec) {
      return reject("lifetime_exceeds_max", `the token lives ${exp - payload.iat} s (iat to exp); at most ${opts.maxLifetimeSec} s are accepted`);
    }
    if (exp - t > opts.maxLifetimeSec + tolerance) {
      return reject("lifetime_exceeds_max", `the token is valid for another ${Math.round(exp - t)} s; at most ${opts.maxLifetimeSec} s are accepted`);
    }
    return {
      ok: true,
      subject: payload.sub,
      issuer: String(payload.iss),
      scopes: tokenScopes(payload),
      expiresAt: new Date(exp * 1000),
      claims: payload,
    };
  }

  return { verify: async (token: string) => count(await verify(token)) };
}
