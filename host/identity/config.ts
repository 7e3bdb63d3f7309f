// Identity settings from the environment. Every problem is collected and reported at once,
// each naming its variable, so a bad deployment fails at start with one clear message.
import { parseSpiffeId } from "../../compiler/spiffe.js";
import type { MetricsAccess } from "./caller.js";
import { workloadApiTarget } from "./workload-api.js";

export type TlsSourceConfig =
  | { readonly mode: "spire"; readonly socketPath: string }
  | { readonly mode: "files"; readonly certPath: string; readonly keyPath: string; readonly bundlePath: string; readonly reloadIntervalMs: number }
  | { readonly mode: "plaintext" };

export interface JwtConfig {
  readonly jwksUrl: URL;
  readonly issuer: string;
  /** Accepted audiences; the token's `aud` must contain one of them. */
  readonly audience: readonly string[];
  readonly maxLifetimeSec: number;
  readonly cacheTtlMs: number;
  /** Least time between two JWKS fetches caused by unknown `kid`s. */
  readonly cooldownMs: number;
  readonly fetchTimeoutMs: number;
  readonly clockToleranceSec: number;
  readonly algorithms: readonly string[];
}

export interface IdentityConfig {
  readonly tls: TlsSourceConfig;
  /** Callers that may ask about any source (sidecar gateways, the operator proxy). */
  readonly trustedEvaluators: ReadonlySet<string>;
  /** Callers allowed admin actions (policy writes, incidents, audit reads) by SPIFFE ID. */
  readonly adminSpiffeIds: ReadonlySet<string>;
  /** Null when ZT_JWKS_URL is unset: agent requests are then denied (agent_auth_not_configured). */
  readonly jwt: JwtConfig | null;
  /** Trust domains whose SVIDs may read policies and the module; null: the engine's own trust domain. */
  readonly readerTrustDomains: ReadonlySet<string> | null;
  /** What GET /metrics on the API port needs (the health port serves it without TLS). */
  readonly metricsAccess: MetricsAccess;
}

export const DEFAULT_JWT_MAX_LIFETIME_SEC = 900;
export const DEFAULT_JWKS_CACHE_TTL_SEC = 3600;
export const DEFAULT_JWKS_COOLDOWN_SEC = 30;
export const DEFAULT_JWKS_TIMEOUT_MS = 5000;
export const DEFAULT_JWT_CLOCK_TOLERANCE_SEC = 5;
export const DEFAULT_TLS_RELOAD_INTERVAL_SEC = 60;
/** Asymmetric algorithms only: a JWKS never holds shared secrets, and "none" is never allowed. */
export const DEFAULT_JWT_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"] as const;
const ALLOWED_JWT_ALGORITHMS = new Set(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]);

export class IdentityConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`identity configuration is invalid:\n  - ${problems.join("\n  - ")}`);
    this.name = "IdentityConfigError";
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function value(env: Env, name: string): string | null {
  const v = env[name];
  if (v === undefined) return null;
  const t = v.trim();
  return t === "" ? null : t;
}

/** Comma- or whitespace-separated SPIFFE IDs. */
function spiffeList(env: Env, name: string, problems: string[]): Set<string> {
  const out = new Set<string>();
  const raw = value(env, name);
  if (raw === null) return out;
  raw.split(/[\s,]+/).filter((s) => s !== "").forEach((item, i) => {
    const r = parseSpiffeId(item);
    if (!r.ok) problems.push(`${name}[${i}] "${item}": ${r.error}`);
    else if (r.value.segments.length === 0) problems.push(`${name}[${i}] "${item}": a caller's SPIFFE ID has a path (a bare trust domain identifies no workload)`);
    else out.add(item);
  });
  return out;
}

function positiveInt(env: Env, name: string, dflt: number, problems: string[]): number {
  const raw = value(env, name);
  if (raw === null) return dflt;
  if (!/^[0-9]+$/.test(raw) || Number(raw) <= 0 || !Number.isSafeInteger(Number(raw))) {
    problems.push(`${name} "${raw}": must be a positive integer`);
    return dflt;
  }
  return Number(raw);
}

function nonNegativeInt(env: Env, name: string, dflt: number, problems: string[]): number {
  const raw = value(env, name);
  if (raw === null) return dflt;
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    problems.push(`${name} "${raw}": must be a non-negative integer`);
    return dflt;
  }
  return Number(raw);
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

function tlsConfig(env: Env, problems: string[]): TlsSourceConfig {
  const socket = value(env, "ZT_SPIRE_SOCKET");
  const cert = value(env, "ZT_TLS_CERT");
  const key = value(env, "ZT_TLS_KEY");
  const bundle = value(env, "ZT_TLS_BUNDLE");
  const anyFile = cert !== null || key !== null || bundle !== null;
  if (socket !== null) {
    if (anyFile) problems.push("ZT_SPIRE_SOCKET and ZT_TLS_CERT/ZT_TLS_KEY/ZT_TLS_BUNDLE are both set: choose one identity source");
    try {
      return { mode: "spire", socketPath: workloadApiTarget(socket).slice("unix://".length) };
    } catch (e) {
      problems.push(`ZT_SPIRE_SOCKET: ${(e as Error).message}`);
      return { mode: "plaintext" };
    }
  }
  if (anyFile) {
    const missing = [["ZT_TLS_CERT", cert], ["ZT_TLS_KEY", key], ["ZT_TLS_BUNDLE", bundle]].filter(([, v]) => v === null).map(([n]) => n);
    if (missing.length) {
      problems.push(`certificate files need ZT_TLS_CERT, ZT_TLS_KEY and ZT_TLS_BUNDLE together; missing: ${missing.join(", ")}`);
      return { mode: "plaintext" };
    }
    const reloadSec = positiveInt(env, "ZT_TLS_RELOAD_INTERVAL_SEC", DEFAULT_TLS_RELOAD_INTERVAL_SEC, problems);
    return { mode: "files", certPath: cert!, keyPath: key!, bundlePath: bundle!, reloadIntervalMs: reloadSec * 1000 };
  }
  return { mode: "plaintext" };
}

function jwtConfig(env: Env, problems: string[]): JwtConfig | null {
  const url = value(env, "ZT_JWKS_URL");
  const issuer = value(env, "ZT_JWT_ISSUER");
  const audience = value(env, "ZT_JWT_AUDIENCE");
  if (url === null) {
    if (issuer !== null || audience !== null) problems.push("ZT_JWT_ISSUER/ZT_JWT_AUDIENCE are set but ZT_JWKS_URL is not: agent JWTs cannot be verified without a JWKS");
    return null;
  }
  let jwksUrl: URL | null = null;
  try {
    jwksUrl = new URL(url);
  } catch {
    problems.push(`ZT_JWKS_URL "${url}": not a URL`);
  }
  if (jwksUrl) {
    if (jwksUrl.protocol !== "https:" && !(jwksUrl.protocol === "http:" && LOOPBACK_HOSTS.has(jwksUrl.hostname))) {
      problems.push(`ZT_JWKS_URL "${url}": must be https (plain http is accepted for loopback hosts only)`);
    }
  }
  if (issuer === null) problems.push("ZT_JWT_ISSUER is required with ZT_JWKS_URL (tokens from any other issuer are rejected)");
  const audiences = audience === null ? [] : audience.split(/[\s,]+/).filter((s) => s !== "");
  if (audiences.length === 0) problems.push("ZT_JWT_AUDIENCE is required with ZT_JWKS_URL (tokens minted for other services are rejected)");
  const algRaw = value(env, "ZT_JWT_ALGORITHMS");
  const algorithms = algRaw === null ? [...DEFAULT_JWT_ALGORITHMS] : algRaw.split(/[\s,]+/).filter((s) => s !== "");
  for (const a of algorithms) if (!ALLOWED_JWT_ALGORITHMS.has(a)) problems.push(`ZT_JWT_ALGORITHMS: "${a}" is not an accepted asymmetric JWS algorithm (${[...ALLOWED_JWT_ALGORITHMS].join(", ")})`);
  if (algorithms.length === 0) problems.push("ZT_JWT_ALGORITHMS is empty");
  return {
    jwksUrl: jwksUrl ?? new URL("https://invalid.invalid/"),
    issuer: issuer ?? "",
    audience: audiences,
    maxLifetimeSec: positiveInt(env, "ZT_JWT_MAX_LIFETIME_SEC", DEFAULT_JWT_MAX_LIFETIME_SEC, problems),
    cacheTtlMs: positiveInt(env, "ZT_JWKS_CACHE_TTL_SEC", DEFAULT_JWKS_CACHE_TTL_SEC, problems) * 1000,
    cooldownMs: positiveInt(env, "ZT_JWKS_COOLDOWN_SEC", DEFAULT_JWKS_COOLDOWN_SEC, problems) * 1000,
    fetchTimeoutMs: positiveInt(env, "ZT_JWKS_TIMEOUT_MS", DEFAULT_JWKS_TIMEOUT_MS, problems),
    clockToleranceSec: nonNegativeInt(env, "ZT_JWT_CLOCK_TOLERANCE_SEC", DEFAULT_JWT_CLOCK_TOLERANCE_SEC, problems),
    algorithms,
  };
}

/** Comma- or whitespace-separated trust domain names (`hanzo.ai`, not `spiffe://hanzo.ai`). */
function trustDomainList(env: Env, name: string, problems: string[]): Set<string> | null {
  const raw = value(env, name);
  if (raw === null) return null;
  const out = new Set<string>();
  raw.split(/[\s,]+/).filter((s) => s !== "").forEach((item, i) => {
    const r = parseSpiffeId(`spiffe://${item}`);
    if (!r.ok || r.value.segments.length > 0) problems.push(`${name}[${i}] "${item}": not a trust domain name (lowercase letters, digits, ".", "-", "_"; no scheme, no path)`);
    else out.add(item);
  });
  return out;
}

const METRICS_ACCESS: readonly MetricsAccess[] = ["svid", "reader", "admin"];

function metricsAccess(env: Env, problems: string[]): MetricsAccess {
  const raw = value(env, "ZT_METRICS_ACCESS");
  if (raw === null) return "reader";
  if ((METRICS_ACCESS as readonly string[]).includes(raw)) return raw as MetricsAccess;
  problems.push(`ZT_METRICS_ACCESS "${raw}": must be one of ${METRICS_ACCESS.join(", ")} (the health port serves /metrics without TLS)`);
  return "reader";
}

/** Reads the identity settings; throws IdentityConfigError listing every problem. */
export function parseIdentityConfig(env: Env): IdentityConfig {
  const problems: string[] = [];
  const tls = tlsConfig(env, problems);
  const trustedEvaluators = spiffeList(env, "ZT_TRUSTED_EVALUATORS", problems);
  const adminSpiffeIds = spiffeList(env, "ZT_ADMIN_SPIFFE_IDS", problems);
  const jwt = jwtConfig(env, problems);
  const readerTrustDomains = trustDomainList(env, "ZT_READER_TRUST_DOMAINS", problems);
  const metrics = metricsAccess(env, problems);
  if (tls.mode === "plaintext" && (trustedEvaluators.size > 0 || adminSpiffeIds.size > 0) && problems.length === 0) {
    problems.push("ZT_TRUSTED_EVALUATORS/ZT_ADMIN_SPIFFE_IDS need mTLS (ZT_SPIRE_SOCKET or ZT_TLS_*): without it no caller has a SPIFFE ID");
  }
  if (problems.length) throw new IdentityConfigError(problems);
  return { tls, trustedEvaluators, adminSpiffeIds, jwt, readerTrustDomains, metricsAccess: metrics };
}
