// The proxy's settings from the environment (docs/proxy.md "Configuration"), checked once at
// start: every problem is collected and reported together, each naming its variable. Secrets
// (the client secret, the cookie secret) are read from files and never appear in errors.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { BlockList, isIP } from "node:net";

export interface OidcSettings {
  readonly issuer: URL;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Extra CA certificates (PEM) for the issuer's TLS, e.g. an internal IAM. */
  readonly caPem: string | null;
  readonly scopes: readonly string[];
  /** The claim recorded as the operator's subject (falls back to `sub`). */
  readonly subjectClaim: string;
  readonly rolesClaim: string;
  readonly groupsClaim: string;
  /** Group -> roles it grants. */
  readonly groupRoles: ReadonlyMap<string, readonly string[]>;
  /** `amr` values that count as MFA. */
  readonly mfaAmr: ReadonlySet<string>;
  /** `acr_values` asked for on step-up; null: step-up only forces a fresh login. */
  readonly mfaAcr: string | null;
  /** How long (seconds after `auth_time`) an MFA sign-in counts for requireMFA. */
  readonly mfaMaxAgeSec: number;
  /** Audiences accepted for ID tokens presented as bearer tokens (scripts); the client id by default. */
  readonly tokenAudiences: readonly string[];
  /** Longest accepted lifetime of a bearer ID token. */
  readonly tokenMaxLifetimeSec: number;
}

export interface ProxySettings {
  readonly routePaths: readonly string[];
  readonly oidc: OidcSettings;
  /** Certificate chain and key (PEM) served for the routes' public host names. */
  readonly tlsCertPem: string;
  readonly tlsKeyPem: string;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  /** Cookie and at-rest secrets: the first seals, all are tried when opening (rotation). */
  readonly secrets: readonly Buffer[] | null;
  /** Where a generated secret is kept when none is configured (single replica). */
  readonly secretFile: string;
  readonly sessionIdleSec: number;
  readonly sessionMaxSec: number;
  /** How long a replica trusts a session row it read before reading it again. */
  readonly sessionCacheMs: number;
  /** External PostgreSQL for sessions (null: the embedded server of the audit trail). */
  readonly dsn: string | null;
  /** Peers whose X-Forwarded-For/Proto/Host are believed; null: nobody's. */
  readonly trustedProxies: BlockList | null;
  readonly assertionTtlSec: number;
  readonly keyRotationSec: number;
}

type Env = Readonly<Record<string, string | undefined>>;

export class ProxyConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`proxy configuration is invalid:\n  - ${problems.join("\n  - ")}`);
    this.name = "ProxyConfigError";
  }
}

function value(env: Env, name: string): string | null {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? null : v;
}

function list(raw: string | null, dflt: readonly string[]): string[] {
  return raw === null ? [...dflt] : raw.split(/[\s,]+/).filter((s) => s !== "");
}

function seconds(env: Env, name: string, dflt: number, min: number, max: number, problems: string[]): number {
  const raw = value(env, name);
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    problems.push(`${name}="${raw}": expected whole seconds between ${min} and ${max}`);
    return dflt;
  }
  return n;
}

/** A file's contents; the problem names the variable and the error code, never the contents. */
function readSecretFile(env: Env, name: string, problems: string[], required: boolean): string | null {
  const path = value(env, name);
  if (path === null) {
    if (required) problems.push(`${name} is required (a file holding the secret)`);
    return null;
  }
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    problems.push(`${name} "${path}": cannot read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    return null;
  }
}

/** `group=role[+role…]` pairs, comma separated. */
function groupRoles(raw: string | null, problems: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const pair of list(raw, [])) {
    const m = /^([^=]+)=(.+)$/.exec(pair);
    if (!m) {
      problems.push(`ZT_OIDC_GROUP_ROLES: "${pair}" is not group=role (several roles: group=role1+role2)`);
      continue;
    }
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), ...m[2]!.split("+")]);
  }
  return out;
}

function trustedProxies(raw: string | null, problems: string[]): BlockList | null {
  if (raw === null) return null;
  const bl = new BlockList();
  for (const item of list(raw, [])) {
    const [addr, bits] = item.split("/");
    const family = isIP(addr ?? "");
    if (family === 0 || (bits !== undefined && !/^\d+$/.test(bits))) {
      problems.push(`ZT_PROXY_TRUSTED_PROXIES: "${item}" is not an address or CIDR`);
      continue;
    }
    const type = family === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) bl.addAddress(addr!, type);
    else bl.addSubnet(addr!, Number(bits), type);
  }
  return bl;
}

/** The secrets of a secret file: one per line (the first seals; the others still open). */
export function parseSecrets(text: string, what: string, problems: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const line of text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))) {
    const b = Buffer.from(line, "base64");
    if (b.length < 32) problems.push(`${what}: each line must be at least 32 bytes, base64-encoded (e.g. openssl rand -base64 32)`);
    else out.push(b);
  }
  if (out.length === 0 && problems.length === 0) problems.push(`${what}: no secret in the file`);
  return out;
}

/** Null when the proxy is not configured (ZT_PROXY_ROUTES unset); throws ProxyConfigError on any problem. */
export function loadProxySettings(env: Env, dataDir: string, cwd: string = process.cwd()): ProxySettings | null {
  const routes = value(env, "ZT_PROXY_ROUTES");
  if (routes === null) return null;
  const problems: string[] = [];
  const issuerRaw = value(env, "ZT_OIDC_ISSUER");
  let issuer: URL | null = null;
  if (issuerRaw === null) problems.push("ZT_OIDC_ISSUER is required: the IAM issuer operators sign in with");
  else {
    try {
      issuer = new URL(issuerRaw);
      if (issuer.protocol !== "https:") problems.push(`ZT_OIDC_ISSUER "${issuerRaw}": must be https://`);
    } catch {
      problems.push(`ZT_OIDC_ISSUER "${issuerRaw}": not a URL`);
    }
  }
  const clientId = value(env, "ZT_OIDC_CLIENT_ID");
  if (clientId === null) problems.push("ZT_OIDC_CLIENT_ID is required");
  const clientSecret = readSecretFile(env, "ZT_OIDC_CLIENT_SECRET_FILE", problems, true)?.trim() ?? "";
  const caPem = readSecretFile(env, "ZT_OIDC_CA_FILE", problems, false);
  const certFile = value(env, "ZT_PROXY_TLS_CERT");
  const keyFile = value(env, "ZT_PROXY_TLS_KEY");
  if (certFile === null || keyFile === null) problems.push("ZT_PROXY_TLS_CERT and ZT_PROXY_TLS_KEY are required: the certificate of the routes' public host names");
  const cert = certFile ? readSecretFile(env, "ZT_PROXY_TLS_CERT", problems, true) : null;
  const key = keyFile ? readSecretFile(env, "ZT_PROXY_TLS_KEY", problems, true) : null;
  const secretText = readSecretFile(env, "ZT_PROXY_COOKIE_SECRET_FILE", problems, false);
  const secrets = secretText === null ? null : parseSecrets(secretText, "ZT_PROXY_COOKIE_SECRET_FILE", problems);
  const sessionIdleSec = seconds(env, "ZT_PROXY_SESSION_IDLE_SEC", 3600, 60, 30 * 86400, problems);
  const sessionMaxSec = seconds(env, "ZT_PROXY_SESSION_MAX_SEC", 12 * 3600, 60, 30 * 86400, problems);
  if (sessionIdleSec > sessionMaxSec) problems.push("ZT_PROXY_SESSION_IDLE_SEC is longer than ZT_PROXY_SESSION_MAX_SEC");
  const assertionTtlSec = seconds(env, "ZT_PROXY_ASSERTION_TTL_SEC", 300, 30, 600, problems);
  const settings = {
    routePaths: list(routes, []).map((p) => resolve(cwd, p)),
    oidc: {
      issuer: issuer ?? new URL("https://invalid"),
      clientId: clientId ?? "",
      clientSecret,
      caPem,
      scopes: list(value(env, "ZT_OIDC_SCOPES"), ["openid", "email", "profile", "offline_access"]),
      subjectClaim: value(env, "ZT_OIDC_SUBJECT_CLAIM") ?? "email",
      rolesClaim: value(env, "ZT_OIDC_ROLES_CLAIM") ?? "roles",
      groupsClaim: value(env, "ZT_OIDC_GROUPS_CLAIM") ?? "groups",
      groupRoles: groupRoles(value(env, "ZT_OIDC_GROUP_ROLES"), problems),
      mfaAmr: new Set(list(value(env, "ZT_OIDC_MFA_AMR"), ["mfa", "otp", "hwk"])),
      mfaAcr: value(env, "ZT_OIDC_MFA_ACR") === "none" ? null : (value(env, "ZT_OIDC_MFA_ACR") ?? "http://schemas.openid.net/pape/policies/2007/06/multi-factor"),
      mfaMaxAgeSec: seconds(env, "ZT_OIDC_MFA_MAX_AGE_SEC", 12 * 3600, 60, 30 * 86400, problems),
      tokenAudiences: list(value(env, "ZT_OIDC_TOKEN_AUDIENCES"), clientId ? [clientId] : []),
      tokenMaxLifetimeSec: seconds(env, "ZT_OIDC_TOKEN_MAX_LIFETIME_SEC", 86400, 60, 30 * 86400, problems),
    },
    tlsCertPem: cert ?? "",
    tlsKeyPem: key ?? "",
    tlsCertFile: certFile ?? "",
    tlsKeyFile: keyFile ?? "",
    secrets,
    secretFile: resolve(dataDir, "proxy-secret"),
    sessionIdleSec,
    sessionMaxSec,
    sessionCacheMs: seconds(env, "ZT_PROXY_SESSION_CACHE_MS", 5000, 0, 600_000, problems),
    dsn: value(env, "ZT_PROXY_DSN"),
    trustedProxies: trustedProxies(value(env, "ZT_PROXY_TRUSTED_PROXIES"), problems),
    assertionTtlSec,
    keyRotationSec: seconds(env, "ZT_PROXY_KEY_ROTATION_SEC", 86400, 60, 365 * 86400, problems),
  };
  if (problems.length > 0) throw new ProxyConfigError(problems);
  return settings;
}
