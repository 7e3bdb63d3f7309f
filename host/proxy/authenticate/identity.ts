// authenticate/: who the operator is. The verified claims of an ID token become an identity:
// the subject (a configured claim, `sub` by default fallback), roles (a claim, plus roles granted
// by groups), the authentication methods (`amr`) with their time, and the issuer's session id.
// Whether MFA counts is decided per request: an accepted `amr`, signed in recently enough.
import type { OidcSettings } from "../config.js";

export interface Identity {
  readonly subject: string;
  readonly email: string | null;
  readonly roles: readonly string[];
  readonly amr: readonly string[];
  readonly acr: string | null;
  /** Seconds since the epoch of the sign-in (`auth_time`); null when the issuer did not say. */
  readonly authTime: number | null;
  /** The issuer's session (`sid`), for logout. */
  readonly idpSid: string | null;
}

const MAX_ROLES = 64;
const MAX_TEXT = 253;

function strings(v: unknown): string[] {
  if (typeof v === "string") return v.split(/[\s,]+/).filter((s) => s !== "");
  if (Array.isArray(v)) return v.filter((s): s is string => typeof s === "string" && s !== "");
  return [];
}

/** A claim by name; a dotted name reads nested objects ("realm_access.roles"). */
function claim(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  if (name in claims) return claims[name];
  let cur: unknown = claims;
  for (const part of name.split(".")) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Null when the claims name no subject (no `sub`): such a token identifies nobody. */
export function identityFromClaims(claims: Readonly<Record<string, unknown>>, cfg: OidcSettings): Identity | null {
  const sub = typeof claims.sub === "string" && claims.sub !== "" ? claims.sub : null;
  if (sub === null) return null;
  const preferred = claim(claims, cfg.subjectClaim);
  const subject = typeof preferred === "string" && preferred !== "" && preferred.length <= 512 ? preferred : sub;
  const roles = new Set(strings(claim(claims, cfg.rolesClaim)).filter((r) => r.length <= MAX_TEXT));
  for (const g of strings(claim(claims, cfg.groupsClaim))) for (const r of cfg.groupRoles.get(g) ?? []) roles.add(r);
  const email = typeof claims.email === "string" ? claims.email : null;
  return {
    subject,
    email,
    roles: [...roles].slice(0, MAX_ROLES),
    amr: strings(claims.amr).slice(0, 16),
    acr: typeof claims.acr === "string" ? claims.acr : null,
    authTime: typeof claims.auth_time === "number" && Number.isFinite(claims.auth_time) ? claims.auth_time : null,
    idpSid: typeof claims.sid === "string" ? claims.sid : null,
  };
}

/** Does this identity's MFA count at `nowSec`: an accepted `amr` value, signed in within the max age. */
export function hasMfa(id: Pick<Identity, "amr" | "authTime">, cfg: Pick<OidcSettings, "mfaAmr" | "mfaMaxAgeSec">, nowSec: number): boolean {
  if (id.authTime === null || nowSec - id.authTime > cfg.mfaMaxAgeSec) return false;
  return id.amr.some((m) => cfg.mfaAmr.has(m));
}
