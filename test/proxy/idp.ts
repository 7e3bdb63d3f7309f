// A real OpenID Provider for the proxy's tests: oidc-provider (v8) over HTTPS with test users
// (with and without MFA enrolled, different roles and groups), its own sign-in pages (password,
// then a one-time code when the client asks for MFA with acr_values), refresh tokens, and
// RP-initiated logout. Its signing key is the test's, so tests can also mint tokens it did not.
import * as https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider, { type LogoutSource } from "oidc-provider";

export const MFA_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
export const OTP = "424242";
export const CLIENT_ID = "zt-proxy";
export const CLIENT_SECRET = "proxy-client-secret-0123456789abcdef";

export interface TestUser {
  readonly password: string;
  readonly email: string;
  readonly roles?: readonly string[];
  readonly groups?: readonly string[];
  /** Enrolled in MFA: a one-time code is asked when the client requests MFA (or always with mfaAlways). */
  readonly mfa: boolean;
  readonly mfaAlways?: boolean;
}

export const USERS: Readonly<Record<string, TestUser>> = {
  dev: { password: "dev-pw", email: "dev@hanzo.test", roles: ["developer"], mfa: false },
  sre: { password: "sre-pw", email: "sre@hanzo.test", roles: ["sre"], mfa: false },
  oncall: { password: "oncall-pw", email: "oncall@hanzo.test", roles: ["oncall"], mfa: true },
  "oncall-nomfa": { password: "nomfa-pw", email: "nomfa@hanzo.test", roles: ["oncall"], mfa: false },
  // The console's writers (host/console/proxy-session.ts).
  "zt-admin": { password: "admin-pw", email: "admin@hanzo.test", roles: ["zt-admin"], mfa: false },
  // Roles from a group (ZT_OIDC_GROUP_ROLES=team-sre=sre).
  lead: { password: "lead-pw", email: "lead@hanzo.test", groups: ["team-sre"], mfa: true, mfaAlways: true },
};

export interface Idp {
  readonly issuer: string;
  readonly port: number;
  /** The provider's signing key (private JWK with kid), for tokens the tests mint themselves. */
  readonly signingJwk: JWK;
  readonly provider: Provider;
  /** Sign-ins completed, by user and whether the one-time code was asked. */
  readonly logins: Array<{ user: string; otp: boolean }>;
  close(): Promise<void>;
}

export interface IdpOptions {
  readonly certPem: string;
  readonly keyPem: string;
  readonly redirectUris: readonly string[];
  readonly postLogoutRedirectUris: readonly string[];
  /** ID token lifetime (seconds): short in refresh tests. */
  readonly idTokenTtl?: number;
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function form(uid: string, step: "login" | "otp", error = ""): string {
  const fields =
    step === "login"
      ? `<label>User <input name="user" autofocus></label><label>Password <input name="password" type="password"></label>`
      : `<label>One-time code <input name="otp" autofocus></label>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>Test IdP ${step}</title></head><body>
<h1>Test IdP: ${step === "login" ? "sign in" : "second factor"}</h1>${error ? `<p id="error">${escape(error)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}/${step}">${fields}<button type="submit" id="submit">Continue</button></form></body></html>`;
}

async function body(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

export async function startIdp(opts: IdpOptions): Promise<Idp> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingJwk: JWK = { ...(await exportJWK(privateKey)), kid: "idp-1", alg: "RS256", use: "sig" };
  const server = https.createServer({ cert: opts.certPem, key: opts.keyPem });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const issuer = `https://127.0.0.1:${port}`;
  const logins: Array<{ user: string; otp: boolean }> = [];
  // Users who passed the password step of an interaction, waiting for their code.
  const pendingOtp = new Map<string, string>();

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [...opts.redirectUris],
        post_logout_redirect_uris: [...opts.postLogoutRedirectUris],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_post",
        require_auth_time: true,
      },
    ],
    jwks: { keys: [signingJwk] },
    cookies: { keys: ["idp-cookie-key-0123456789"] },
    pkce: { required: () => true, methods: ["S256"] },
    acrValues: ["urn:zt:pwd", MFA_ACR],
    claims: { acr: null, amr: null, auth_time: null, sid: null, openid: ["sub", "acr", "amr", "sid"], email: ["email", "email_verified"], profile: ["name"], roles: ["roles", "groups"] },
    scopes: ["openid", "offline_access", "email", "profile", "roles"],
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false }, backchannelLogout: { enabled: true }, rpInitiatedLogout: { enabled: true, logoutSource: (async (ctx, f) => void (ctx.body = `<!doctype html><html><body><h1>Sign out of the test IdP?</h1>${f}<button form="op.logoutForm" id="logout-yes" value="yes" name="logout">Yes</button></body></html>`)) as LogoutSource } },
    ttl: { IdToken: opts.idTokenTtl ?? 3600, AccessToken: opts.idTokenTtl ?? 3600, RefreshToken: 86400, Session: 86400, Interaction: 600, Grant: 86400 },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    async findAccount(_ctx, sub) {
      const u = USERS[sub];
      if (!u) return undefined;
      return { accountId: sub, claims: async () => ({ sub, email: u.email, email_verified: true, name: sub, ...(u.roles ? { roles: [...u.roles] } : {}), ...(u.groups ? { groups: [...u.groups] } : {}) }) };
    },
    // Every test client is first-party: its scopes are granted without a consent page.
    async loadExistingGrant(ctx) {
      const id = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
      if (id) return ctx.oidc.provider.Grant.find(id);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! });
      grant.addOIDCScope("openid email profile roles offline_access");
      await grant.save();
      return grant;
    },
    renderError: async (ctx, out) => void (ctx.body = `<!doctype html><html><body><h1>IdP error</h1><p id="error">${escape(String(out.error))}: ${escape(String(out.error_description ?? ""))}</p></body></html>`),
  });
  provider.proxy = false;

  const finish = async (req: IncomingMessage, res: ServerResponse, user: string, otp: boolean): Promise<void> => {
    logins.push({ user, otp });
    await provider.interactionFinished(req, res, { login: { accountId: user, amr: otp ? ["pwd", "otp"] : ["pwd"], acr: otp ? MFA_ACR : "urn:zt:pwd" } }, { mergeWithLastSubmission: false });
  };

  const callback = provider.callback();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", issuer);
    const m = /^\/interaction\/([^/]+)(?:\/(login|otp))?$/.exec(url.pathname);
    if (!m) return void callback(req, res);
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      const uid = m[1]!;
      const html = (s: string): void => void res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(s);
      if (req.method === "GET") return html(form(uid, pendingOtp.has(uid) ? "otp" : "login"));
      const f = await body(req);
      if (m[2] === "login") {
        const name = f.get("user") ?? "";
        const u = USERS[name];
        if (!u || u.password !== f.get("password")) return html(form(uid, "login", "wrong user or password"));
        const wantsMfa = String(details.params.acr_values ?? "").split(" ").includes(MFA_ACR);
        if (u.mfa && (wantsMfa || u.mfaAlways)) {
          pendingOtp.set(uid, name);
          return html(form(uid, "otp"));
        }
        return finish(req, res, name, false);
      }
      const name = pendingOtp.get(uid);
      if (name === undefined) return html(form(uid, "login", "sign in first"));
      if (f.get("otp") !== OTP) return html(form(uid, "otp", "wrong code"));
      pendingOtp.delete(uid);
      return finish(req, res, name, true);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(400, { "content-type": "text/plain" });
      res.end(`interaction failed: ${(e as Error).message}`);
    });
  });

  return {
    issuer,
    port,
    signingJwk,
    provider,
    logins,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
