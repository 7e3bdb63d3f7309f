// The operator behind a request, from what it presents: `Proxy-Authorization: Bearer`, else the
// session cookie, else `Authorization: Bearer` (as IAP does: an app that needs Authorization for
// itself gets it untouched when the operator authenticates another way). A bearer is a CLI
// session token ("ztp_…") or an ID token of the issuer (scripts). A presented credential that
// does not hold is a refusal with a reason; no credential at all is a login challenge.
import * as client from "openid-client";
import type { OidcSettings } from "../config.js";
import { createJwtVerifier, type JwtVerifier } from "../../identity/jwt.js";
import { parseCookies, SESSION_COOKIE } from "./cookies.js";
import { hasMfa, type Identity, identityFromClaims } from "./identity.js";
import { IssuerUnavailableError, type OidcClient } from "./oidc.js";
import type { Sealer } from "./seal.js";
import { CLI_TOKEN_PREFIX, type Session, type SessionStore } from "./sessions.js";

/** Which request header carried the credential (forward/ strips it; the others pass upstream). */
export type CredentialSource = "cookie" | "authorization" | "proxy-authorization";

export type Credential =
  | { readonly kind: "none" }
  | { readonly kind: "session"; readonly session: Session; readonly identity: Identity; readonly source: CredentialSource }
  | { readonly kind: "token"; readonly identity: Identity; readonly source: CredentialSource }
  | { readonly kind: "invalid"; readonly reason: string; readonly message: string; readonly source: CredentialSource }
  | { readonly kind: "unavailable"; readonly message: string };

export interface PresentedHeaders {
  readonly cookie?: string;
  readonly authorization?: string;
  readonly proxyAuthorization?: string;
}

/** Refresh this long before the ID token expires. */
const REFRESH_AHEAD_SEC = 60;

function bearer(v: string | undefined): string | null {
  if (!v) return null;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(v);
  return m ? m[1]! : null;
}

export interface AuthenticatorDeps {
  readonly sessions: SessionStore;
  readonly cookies: Sealer;
  readonly oidc: OidcClient;
  readonly settings: OidcSettings;
}

export class Authenticator {
  private verifier: Promise<JwtVerifier> | null = null;
  private readonly refreshing = new Map<string, Promise<Session | null>>();

  constructor(private readonly deps: AuthenticatorDeps) {}

  /** MFA that counts now for this identity. */
  mfa(identity: Identity, nowMs = Date.now()): boolean {
    return hasMfa(identity, this.deps.settings, Math.floor(nowMs / 1000));
  }

  async authenticate(h: PresentedHeaders, host: string, nowMs = Date.now()): Promise<Credential> {
    const proxyToken = bearer(h.proxyAuthorization);
    if (proxyToken !== null) return this.fromBearer(proxyToken, "proxy-authorization", nowMs);
    const sealed = h.cookie?.includes(SESSION_COOKIE) ? parseCookies(h.cookie)[SESSION_COOKIE] : undefined;
    if (sealed !== undefined) {
      const c = await this.fromCookie(sealed, host, nowMs);
      if (c.kind !== "none") return c;
    }
    const token = bearer(h.authorization);
    if (token !== null) return this.fromBearer(token, "authorization", nowMs);
    return { kind: "none" };
  }

  private async fromCookie(sealed: string, host: string, nowMs: number): Promise<Credential> {
    const p = await this.deps.cookies.open(sealed);
    if (p === null || typeof p.s !== "string" || typeof p.h !== "string") return { kind: "invalid", reason: "proxy_invalid_cookie", message: "The session cookie is not valid.", source: "cookie" };
    // Cookies are host-only; a cookie of another host was copied, not sent by the browser.
    if (p.h !== host) return { kind: "invalid", reason: "proxy_cookie_host_mismatch", message: "The session cookie belongs to another host.", source: "cookie" };
    const s = await this.deps.sessions.get(p.s, nowMs);
    // An ended or expired session is not an attack: sign in again.
    return s === null || s.kind !== "browser" ? { kind: "none" } : this.live(s, "cookie", nowMs);
  }

  private async fromBearer(token: string, source: CredentialSource, nowMs: number): Promise<Credential> {
    if (token.startsWith(CLI_TOKEN_PREFIX)) {
      const s = await this.deps.sessions.get(token.slice(CLI_TOKEN_PREFIX.length), nowMs);
      if (s === null || s.kind !== "cli") return { kind: "invalid", reason: "proxy_invalid_token:unknown_session", message: "The token is unknown, expired or signed out; sign in again (zt connect does).", source };
      return this.live(s, source, nowMs);
    }
    let verifier: JwtVerifier;
    try {
      verifier = await this.jwtVerifier();
    } catch (e) {
      return { kind: "unavailable", message: (e as Error).message };
    }
    const r = await verifier.verify(token);
    if (!r.ok) {
      if (r.reason === "jwks_unavailable") return { kind: "unavailable", message: "The identity provider's keys are unavailable." };
      return { kind: "invalid", reason: `proxy_invalid_token:${r.reason}`, message: `The bearer token was rejected (${r.reason}).`, source };
    }
    const identity = identityFromClaims(r.claims as Record<string, unknown>, this.deps.settings);
    if (identity === null) return { kind: "invalid", reason: "proxy_invalid_token:missing_subject", message: "The bearer token names no subject.", source };
    return { kind: "token", identity, source };
  }

  /** A session found by its id: refreshed when due; a CLI session speaks for its browser sign-in. */
  private async live(s: Session, source: CredentialSource, nowMs: number): Promise<Credential> {
    let signIn: Session | null = s;
    if (s.parentHash !== null) signIn = await this.deps.sessions.byHash(s.parentHash, nowMs);
    if (signIn === null) {
      await this.deps.sessions.end(s);
      return source === "cookie" ? { kind: "none" } : { kind: "invalid", reason: "proxy_invalid_token:unknown_session", message: "The sign-in this token came from has ended; sign in again.", source };
    }
    try {
      signIn = await this.fresh(signIn, nowMs);
    } catch (e) {
      return { kind: "unavailable", message: e instanceof IssuerUnavailableError ? e.message : "The identity provider is unavailable; the session cannot be refreshed." };
    }
    if (signIn === null) {
      return source === "cookie" ? { kind: "none" } : { kind: "invalid", reason: "proxy_invalid_token:session_ended", message: "The sign-in ended at the identity provider; sign in again.", source };
    }
    await this.deps.sessions.touch(signIn, nowMs);
    if (signIn !== s) await this.deps.sessions.touch(s, nowMs);
    return { kind: "session", session: s, identity: signIn.identity, source };
  }

  /** The session with tokens not about to expire: refreshed (once across replicas), or null when it ended. */
  private async fresh(s: Session, nowMs: number): Promise<Session | null> {
    const nowSec = Math.floor(nowMs / 1000);
    if (s.tokensExpireAt === null || s.tokensExpireAt - REFRESH_AHEAD_SEC > nowSec) return s;
    const key = s.idHash.toString("base64");
    let p = this.refreshing.get(key);
    if (p === undefined) {
      p = this.refreshNow(s, nowSec + REFRESH_AHEAD_SEC).finally(() => this.refreshing.delete(key));
      this.refreshing.set(key, p);
    }
    return p;
  }

  private async refreshNow(s: Session, dueBySec: number): Promise<Session | null> {
    let ended = false;
    let out: Session | null;
    try {
      out = await this.deps.sessions.refreshLocked(s, dueBySec, async (tokens) => {
        // Nothing to refresh with (no refresh token, or tokens that no longer open): sign in again.
        if (tokens === null || tokens.refreshToken === null) throw new SessionOver();
        let next;
        try {
          next = await this.deps.oidc.refresh(tokens.refreshToken);
        } catch (e) {
          if (e instanceof client.ResponseBodyError) throw new SessionOver();
          throw e instanceof IssuerUnavailableError ? e : new IssuerUnavailableError(`refresh failed: ${(e as Error).message}`);
        }
        const identity = next.claims ? identityFromClaims(next.claims, this.deps.settings) : s.identity;
        if (identity === null) throw new SessionOver();
        return { identity, tokens: { idToken: next.idToken ?? tokens.idToken, refreshToken: next.refreshToken }, expiresAt: next.expiresAt };
      });
    } catch (e) {
      if (!(e instanceof SessionOver)) throw e;
      ended = true;
      out = null;
    }
    if (ended) await this.deps.sessions.end(s);
    return out;
  }

  private jwtVerifier(): Promise<JwtVerifier> {
    this.verifier ??= (async () => {
      const config = await this.deps.oidc.configuration();
      return createJwtVerifier({
        jwksUrl: await this.deps.oidc.jwksUri(),
        issuer: config.serverMetadata().issuer,
        audience: this.deps.settings.tokenAudiences,
        maxLifetimeSec: this.deps.settings.tokenMaxLifetimeSec,
        cacheTtlMs: 600_000,
        ...(this.deps.oidc.fetch ? { fetch: this.deps.oidc.fetch as never } : {}),
      });
    })().catch((e: unknown) => {
      this.verifier = null;
      throw e;
    });
    return this.verifier;
  }
}

/** The issuer ended the sign-in (refresh refused) or there is nothing to refresh with. */
class SessionOver extends Error {}
