// The OpenID Connect relying party, with openid-client (v6): discovery of the issuer (retried,
// never blocking the start), the authorization URL with PKCE, state and nonce, the code
// exchange with every check openid-client makes (signature, iss, aud, exp, nonce, state,
// auth_time vs max_age), refresh, and the issuer's end-session URL for RP-initiated logout.
import * as client from "openid-client";
import type { OidcSettings } from "../config.js";
import { fetchTrusting } from "./ca-fetch.js";

export interface TokenSet {
  readonly claims: Record<string, unknown>;
  readonly idToken: string;
  readonly refreshToken: string | null;
  /** When the ID token expires (seconds since the epoch): then refresh, or sign in again. */
  readonly expiresAt: number;
}

export interface RefreshedTokens {
  readonly claims: Record<string, unknown> | null;
  readonly idToken: string | null;
  readonly refreshToken: string;
  readonly expiresAt: number;
}

export interface AuthorizationRequest {
  readonly redirectUri: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeChallenge: string;
  /** Ask the issuer for MFA (acr_values) and a fresh sign-in (max_age=0). */
  readonly stepUp: boolean;
}

export interface OidcClient {
  /** The issuer's metadata; rejects while the issuer is unreachable (retried on the next call). */
  configuration(): Promise<client.Configuration>;
  authorizationUrl(req: AuthorizationRequest): Promise<URL>;
  /** Finishes a login: `callback` is the URL the browser came back to. Throws on any failed check. */
  exchange(callback: URL, checks: { state: string; nonce: string; verifier: string; stepUp: boolean }): Promise<TokenSet>;
  /** New tokens from a refresh token; `claims`/`idToken` are null when the issuer sent no new ID token. */
  refresh(refreshToken: string): Promise<RefreshedTokens>;
  /** The issuer's end_session_endpoint URL, or null when it has none. */
  endSessionUrl(idTokenHint: string | null, postLogoutRedirectUri: string): Promise<URL | null>;
  /** For verifying ID tokens presented as bearer tokens. */
  jwksUri(): Promise<URL>;
  readonly fetch: ((url: string, options: never) => Promise<Response>) | null;
}

/** Discovery failures are retried at most this often. */
const RETRY_MS = 2000;

/** Thrown when the issuer cannot be reached or answers nonsense: a 503, not a refusal of the operator. */
export class IssuerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IssuerUnavailableError";
  }
}

function tokenSet(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): TokenSet {
  const claims = tokens.claims();
  if (!claims || !tokens.id_token) throw new Error("the issuer returned no ID token");
  return { claims: claims as Record<string, unknown>, idToken: tokens.id_token, refreshToken: tokens.refresh_token ?? null, expiresAt: claims.exp };
}

export function createOidcClient(cfg: OidcSettings): OidcClient {
  const customFetch = cfg.caPem ? fetchTrusting(cfg.caPem) : null;
  let config: Promise<client.Configuration> | null = null;
  let failedAt = 0;

  const configuration = (): Promise<client.Configuration> => {
    if (config === null && Date.now() - failedAt < RETRY_MS) return Promise.reject(new IssuerUnavailableError(`the identity provider ${cfg.issuer.origin} is unavailable`));
    config ??= client
      .discovery(cfg.issuer, cfg.clientId, undefined, client.ClientSecretPost(cfg.clientSecret), customFetch ? { [client.customFetch]: customFetch as client.CustomFetch } : undefined)
      .catch((e: unknown) => {
        config = null;
        failedAt = Date.now();
        throw new IssuerUnavailableError(`discovery of ${cfg.issuer.origin} failed: ${(e as Error).message}`);
      });
    return config;
  };

  return {
    configuration,
    fetch: customFetch as OidcClient["fetch"],
    async authorizationUrl(req) {
      const params: Record<string, string> = {
        redirect_uri: req.redirectUri,
        scope: cfg.scopes.join(" "),
        state: req.state,
        nonce: req.nonce,
        code_challenge: req.codeChallenge,
        code_challenge_method: "S256",
      };
      if (req.stepUp) {
        if (cfg.mfaAcr !== null) params.acr_values = cfg.mfaAcr;
        params.max_age = "0";
        params.prompt = "login";
      }
      return client.buildAuthorizationUrl(await configuration(), params);
    },
    async exchange(callback, checks) {
      const tokens = await client.authorizationCodeGrant(await configuration(), callback, {
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        pkceCodeVerifier: checks.verifier,
        // A step-up asked for max_age=0: auth_time must be now (within the clock tolerance).
        ...(checks.stepUp ? { maxAge: 0 } : {}),
      });
      return tokenSet(tokens);
    },
    async refresh(refreshToken) {
      const tokens = await client.refreshTokenGrant(await configuration(), refreshToken);
      const claims = (tokens.claims() as Record<string, unknown> | undefined) ?? null;
      const expiresIn = tokens.expiresIn();
      return {
        claims,
        idToken: tokens.id_token ?? null,
        refreshToken: tokens.refresh_token ?? refreshToken,
        expiresAt: typeof claims?.exp === "number" ? claims.exp : Math.floor(Date.now() / 1000) + (expiresIn ?? 300),
      };
    },
    async endSessionUrl(idTokenHint, postLogoutRedirectUri) {
      const c = await configuration();
      if (!c.serverMetadata().end_session_endpoint) return null;
      const params: Record<string, string> = { post_logout_redirect_uri: postLogoutRedirectUri, client_id: cfg.clientId };
      if (idTokenHint) params.id_token_hint = idTokenHint;
      return client.buildEndSessionUrl(c, params);
    },
    async jwksUri() {
      const uri = (await configuration()).serverMetadata().jwks_uri;
      if (!uri) throw new IssuerUnavailableError("the issuer publishes no jwks_uri");
      return new URL(uri);
    },
  };
}
