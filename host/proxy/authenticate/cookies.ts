// The proxy's cookies: the session (`__Host-zt-session`, a sealed session id) and the login
// states (`__Host-zt-login-…`). `__Host-` means Secure, Path=/ and no Domain: host-only, so a
// cookie set for one route host is never sent to another. HttpOnly, SameSite=Lax.

export const SESSION_COOKIE = "__Host-zt-session";
/** Every cookie name the proxy owns starts with this; none of them is ever sent upstream. */
export const PROXY_COOKIE_PREFIX = "__Host-zt-";

/** A Set-Cookie value; maxAgeSec 0 deletes the cookie. */
export function setCookie(name: string, value: string, maxAgeSec: number): string {
  return `${name}=${value}; Max-Age=${maxAgeSec}; Path=/; Secure; HttpOnly; SameSite=Lax`;
}

/** Cookies of a Cookie header (first occurrence of a name wins); values are not decoded. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!(name in out)) out[name] = part.slice(eq + 1).trim();
  }
  return out;
}

/** The Cookie header without the proxy's own cookies; null when nothing remains. */
export function withoutProxyCookies(header: string | undefined): string | null {
  if (!header) return null;
  if (!header.includes(PROXY_COOKIE_PREFIX)) return header;
  const kept = header
    .split(";")
    .map((p) => p.trim())
    .filter((p) => p !== "" && !p.startsWith(PROXY_COOKIE_PREFIX));
  return kept.length > 0 ? kept.join("; ") : null;
}
