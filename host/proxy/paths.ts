// The proxy's own paths on every route host (reserved: never forwarded upstream).
export const PREFIX = "/.zt";
export const JWKS_PATH = `${PREFIX}/jwks.json`;

/** The login URL that returns to `returnTo` (a path on this host), asking for MFA when `stepUp`. */
export function loginUrl(returnTo: string, stepUp = false): string {
  return `${PREFIX}/login?rd=${encodeURIComponent(returnTo)}${stepUp ? "&step_up=mfa" : ""}`;
}
