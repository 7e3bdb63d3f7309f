// The login dance: one short-lived state cookie per login attempt, named after its `state`, so
// several tabs can sign in at once (each callback finds its own cookie); the cookie holds the
// nonce, the PKCE verifier and where to return, sealed. A state is accepted once: its hash is
// recorded when used, and a replayed callback finds it. Every failure has a reason to audit.
import { createHash } from "node:crypto";
import * as client from "openid-client";
import type { Sql } from "postgres";
import { IssuerUnavailableError, type OidcClient, type TokenSet } from "./oidc.js";
import type { Sealer } from "./seal.js";

export const STATE_COOKIE_PREFIX = "__Host-zt-login-";
/** How long a login attempt may take, from the redirect to the issuer to the callback. */
export const LOGIN_TTL_SEC = 600;

/** What a login attempt remembers across the issuer's round trip. */
export interface Attempt {
  readonly returnTo: string;
  /** The operator asked for (or a route needs) MFA: acr_values and a fresh sign-in were requested. */
  readonly stepUp: boolean;
}

export interface Begun {
  readonly cookieName: string;
  readonly cookieValue: string;
  readonly url: URL;
}

export type Finished =
  | { readonly ok: true; readonly tokens: TokenSet; readonly attempt: Attempt; readonly cookieName: string }
  | { readonly ok: false; readonly status: 400 | 403 | 503; readonly reason: string; readonly message: string; readonly cookieName: string | null };

/** The state cookie of one attempt: the name is derived from the state, never the state itself. */
export function stateCookieName(state: string): string {
  return STATE_COOKIE_PREFIX + createHash("sha256").update(state).digest("base64url").slice(0, 16);
}

function hashState(state: string): Buffer {
  return createHash("sha256").update("zt-proxy-state:").update(state).digest();
}

/** openid-client's refusal codes, for the audit reason (never the token text). */
function tokenRejection(e: unknown): string {
  if (e instanceof client.ResponseBodyError) return `issuer_error:${e.error}`;
  if (e instanceof client.AuthorizationResponseError) return `authorization_error:${e.error}`;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code.toLowerCase() : "invalid_response";
}

export class Logins {
  constructor(
    private readonly sql: Sql,
    private readonly sealer: Sealer,
    private readonly oidc: OidcClient,
  ) {}

  /** Starts an attempt: the issuer URL to redirect to, and the attempt's cookie. */
  async begin(redirectUri: string, attempt: Attempt, nowSec = Math.floor(Date.now() / 1000)): Promise<Begun> {
    const state = client.randomState();
    const nonce = client.randomNonce();
    const verifier = client.randomPKCECodeVerifier();
    const url = await this.oidc.authorizationUrl({ redirectUri, state, nonce, codeChallenge: await client.calculatePKCECodeChallenge(verifier), stepUp: attempt.stepUp });
    const cookieValue = await this.sealer.seal({ s: state, n: nonce, v: verifier, r: attempt.returnTo, u: attempt.stepUp }, nowSec + LOGIN_TTL_SEC);
    return { cookieName: stateCookieName(state), cookieValue, url };
  }

  /**
   * Finishes an attempt from the callback URL (as the browser saw it) and the cookies it sent.
   * Refusals: a missing or unreadable state, no cookie for it (expired, another browser, or a
   * forged callback), a replay, the issuer's error, or tokens openid-client rejects.
   */
  async finish(callback: URL, cookies: Readonly<Record<string, string>>, nowMs = Date.now()): Promise<Finished> {
    const state = callback.searchParams.get("state");
    if (state === null || state === "" || state.length > 512) return { ok: false, status: 400, reason: "proxy_login_no_state", message: "The sign-in response carries no state.", cookieName: null };
    const cookieName = stateCookieName(state);
    const issuerError = callback.searchParams.get("error");
    if (issuerError !== null) {
      const code = /^[\w.-]{1,64}$/.test(issuerError) ? issuerError : "invalid";
      return { ok: false, status: 403, reason: `proxy_login_issuer_error:${code}`, message: `The identity provider refused the sign-in (${code}).`, cookieName };
    }
    const sealed = cookies[cookieName];
    if (sealed === undefined) return { ok: false, status: 400, reason: "proxy_login_state_missing", message: "This sign-in was not started in this browser, or took too long. Start again.", cookieName: null };
    const payload = await this.sealer.open(sealed);
    if (payload === null || payload.s !== state || typeof payload.n !== "string" || typeof payload.v !== "string" || typeof payload.r !== "string") {
      return { ok: false, status: 400, reason: "proxy_login_state_invalid", message: "The sign-in state was altered or has expired. Start again.", cookieName };
    }
    const fresh = await this.sql`
      INSERT INTO zt_proxy.used_states (state_hash, expires_at) VALUES (${hashState(state)}, ${new Date(nowMs + LOGIN_TTL_SEC * 1000)})
      ON CONFLICT DO NOTHING RETURNING 1`;
    if (fresh.length === 0) return { ok: false, status: 400, reason: "proxy_login_replayed", message: "This sign-in response was already used.", cookieName };
    const attempt: Attempt = { returnTo: payload.r, stepUp: payload.u === true };
    try {
      const tokens = await this.oidc.exchange(callback, { state, nonce: payload.n, verifier: payload.v, stepUp: attempt.stepUp });
      return { ok: true, tokens, attempt, cookieName };
    } catch (e) {
      if (e instanceof IssuerUnavailableError || e instanceof TypeError) return { ok: false, status: 503, reason: "proxy_issuer_unavailable", message: "The identity provider is unavailable. Try again shortly.", cookieName };
      const why = tokenRejection(e);
      return { ok: false, status: 403, reason: `proxy_login_rejected:${why}`, message: `The identity provider's answer was rejected (${why}).`, cookieName };
    }
  }
}
