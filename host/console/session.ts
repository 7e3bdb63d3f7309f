// The console's session: a signed value in a `__Host-` cookie (HttpOnly, Secure,
// SameSite=Strict), never the admin token itself. Signed rather than kept in memory so that
// any replica behind the same load balancer accepts it (they share the admin token, from
// which the signing key is derived; rotating the token ends every session). Logout revokes
// the session id on this replica too; the cookie's expiry bounds the rest.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const SESSION_COOKIE = "__Host-zt-console";
export const LOGIN_COOKIE = "__Host-zt-console-login";
export const SESSION_SECONDS = 8 * 60 * 60;
export const LOGIN_SECONDS = 10 * 60;

export type Role = "admin" | "reader";

export interface Session {
  /** Random id: the CSRF token is bound to it, logout revokes it. */
  sid: string;
  /** Who: "admin-token", or the operator's subject from the access proxy. */
  sub: string;
  role: Role;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** Set when the access proxy's assertion made this session (no console cookie; the proxy signs out). */
  via?: "proxy";
}

function b64(buf: Buffer): string {
  return buf.toString("base64url");
}

/** Equal strings, in time independent of where they differ. */
export function sameSecret(a: string, b: string): boolean {
  const x = createHmac("sha256", "zt-console-compare").update(a).digest();
  const y = createHmac("sha256", "zt-console-compare").update(b).digest();
  return timingSafeEqual(x, y);
}

export class SessionKeys {
  private readonly key: Buffer;
  private readonly revoked = new Map<string, number>();

  /** `secret`: the admin token (or any high-entropy secret the replicas share). */
  constructor(secret: string) {
    this.key = createHmac("sha256", secret).update("zt-console-session-key-v1").digest();
  }

  private mac(purpose: string, value: string): string {
    return b64(createHmac("sha256", this.key).update(purpose + "\n" + value).digest());
  }

  issue(sub: string, role: Role, nowS: number = Math.floor(Date.now() / 1000)): { session: Session; cookie: string } {
    const session: Session = { sid: b64(randomBytes(18)), sub, role, exp: nowS + SESSION_SECONDS };
    const payload = b64(Buffer.from(JSON.stringify(session), "utf8"));
    return { session, cookie: `${payload}.${this.mac("session", payload)}` };
  }

  /** The session a cookie value stands for; null when forged, malformed, expired or revoked. */
  read(cookie: string | undefined, nowS: number = Math.floor(Date.now() / 1000)): Session | null {
    if (cookie === undefined || cookie.length > 2048) return null;
    const dot = cookie.indexOf(".");
    if (dot <= 0) return null;
    const payload = cookie.slice(0, dot);
    if (!sameSecret(cookie.slice(dot + 1), this.mac("session", payload))) return null;
    let s: unknown;
    try {
      s = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      return null;
    }
    if (!isSession(s) || s.exp <= nowS || this.revoked.has(s.sid)) return null;
    return s;
  }

  /** A stable session id for an operator the access proxy vouches for (the CSRF token is bound to it). */
  proxySid(sub: string): string {
    return "proxy." + this.mac("proxy-sid", sub);
  }

  revoke(s: Session, nowS: number = Math.floor(Date.now() / 1000)): void {
    for (const [sid, exp] of this.revoked) if (exp <= nowS) this.revoked.delete(sid);
    this.revoked.set(s.sid, s.exp);
  }

  /** The synchronizer token of a session: every write carries it (form field or header). */
  csrfToken(s: Session): string {
    return this.mac("csrf", s.sid);
  }

  checkCsrf(s: Session, sent: string | null | undefined): boolean {
    return typeof sent === "string" && sameSecret(sent, this.csrfToken(s));
  }

  /** Login CSRF: a random nonce in a short-lived cookie, its MAC in the form. */
  loginNonce(): { nonce: string; token: string } {
    const nonce = b64(randomBytes(18));
    return { nonce, token: this.mac("login", nonce) };
  }

  checkLogin(nonce: string | undefined, sent: string | null | undefined): boolean {
    return nonce !== undefined && typeof sent === "string" && sameSecret(sent, this.mac("login", nonce));
  }
}

function isSession(v: unknown): v is Session {
  if (v === null || typeof v !== "object") return false;
  const s = v as Record<string, unknown>;
  return typeof s.sid === "string" && typeof s.sub === "string" && (s.role === "admin" || s.role === "reader") && typeof s.exp === "number";
}
