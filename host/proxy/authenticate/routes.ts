// The proxy's own endpoints under /.zt/ on every route host: sign in (login, callback), sign out
// (a POST, same-origin only, then RP-initiated logout at the issuer), who am I, the session's
// incident, and the CLI's browser login (a one-time code to a loopback port, bound by PKCE).
import { createHash, randomBytes } from "node:crypto";
import { Hono, type Context } from "hono";
import type { Sql } from "postgres";
import { INCIDENT_ID } from "../../engine/incidents.js";
import type { Authorizer } from "../authorize/operator.js";
import type { ProxySettings } from "../config.js";
import type { ProxyEnv } from "../context.js";
import type { ProxyMetrics } from "../metrics.js";
import { page, redirect, wantsHtml } from "../pages.js";
import { loginUrl, PREFIX } from "../paths.js";
import { parseCookies, SESSION_COOKIE, setCookie } from "./cookies.js";
import type { Authenticator, Credential } from "./credential.js";
import { identityFromClaims } from "./identity.js";
import { LOGIN_TTL_SEC, type Logins } from "./login.js";
import { IssuerUnavailableError, type OidcClient } from "./oidc.js";
import { safeReturnTo } from "./return-to.js";
import type { Sealer } from "./seal.js";
import { CLI_TOKEN_PREFIX, sessionHash, type SessionStore } from "./sessions.js";

const CLI_CODE_TTL_MS = 60_000;

export interface AuthRoutesDeps {
  readonly sql: Sql;
  readonly logins: Logins;
  readonly sessions: SessionStore;
  readonly auth: Authenticator;
  readonly cookies: Sealer;
  readonly oidc: OidcClient;
  readonly settings: ProxySettings;
  readonly authorizer: Authorizer;
  readonly metrics: ProxyMetrics;
}

/** The public origin of this request: always https (the proxy serves nothing else). */
export function originOf(c: Context<ProxyEnv>): string {
  return `https://${c.var.info.authority}`;
}

function html(c: Context<ProxyEnv>): boolean {
  return wantsHtml(c.env.incoming.headers);
}

/** A state-changing request must come from a page of this origin (no CSRF from other sites). */
function sameOrigin(c: Context<ProxyEnv>): boolean {
  const origin = c.req.header("origin");
  // Browsers send "Origin: null" when a referrer policy hides it; Sec-Fetch-Site still tells.
  if (origin !== undefined && origin !== "null") return origin === originOf(c);
  return c.req.header("sec-fetch-site") === "same-origin";
}

export function authRoutes(deps: AuthRoutesDeps): Hono<ProxyEnv> {
  const app = new Hono<ProxyEnv>();
  const { settings } = deps;

  /** Refused and audited: a bad login response, a CSRF attempt, an unsafe return URL. */
  const refuse = (c: Context<ProxyEnv>, status: number, reason: string, title: string, message: string, extra: Record<string, string | string[]> = {}) => {
    const d = deps.authorizer.refuse(null, { route: null, service: "(proxy-login)", action: "login" }, reason, "http", c.var.info.remote);
    deps.metrics.request(null, "refused");
    return page({ status, title, message, code: reason, decisionId: d.decision_id, headers: extra }, html(c));
  };

  const unavailable = (c: Context<ProxyEnv>, message: string) => {
    deps.metrics.request(null, "unavailable");
    return page({ status: 503, title: "Sign-in unavailable", message, code: "issuer_unavailable", headers: { "retry-after": "5" } }, html(c));
  };

  const current = (c: Context<ProxyEnv>): Promise<Credential> =>
    deps.auth.authenticate({ cookie: c.req.header("cookie"), authorization: c.req.header("authorization"), proxyAuthorization: c.req.header("proxy-authorization") }, c.var.info.host);

  app.get(`${PREFIX}/login`, async (c) => {
    const returnTo = safeReturnTo(c.req.query("rd"));
    if (returnTo === null) return refuse(c, 400, "proxy_open_redirect", "Unsafe return address", "The sign-in was asked to return to another site; it was refused.");
    try {
      const begun = await deps.logins.begin(`${originOf(c)}${PREFIX}/callback`, { returnTo, stepUp: c.req.query("step_up") === "mfa" });
      return redirect(begun.url.href, [setCookie(begun.cookieName, begun.cookieValue, LOGIN_TTL_SEC)]);
    } catch (e) {
      if (e instanceof IssuerUnavailableError) return unavailable(c, "The identity provider cannot be reached. Try again shortly.");
      throw e;
    }
  });

  app.get(`${PREFIX}/callback`, async (c) => {
    const callback = new URL(`${originOf(c)}${c.req.path}${new URL(c.req.url).search}`);
    const cookieHeader = c.req.header("cookie");
    const r = await deps.logins.finish(callback, parseCookies(cookieHeader));
    const clearState = r.cookieName ? [setCookie(r.cookieName, "", 0)] : [];
    if (!r.ok) {
      deps.metrics.login("refused");
      if (r.status === 503) return unavailable(c, r.message);
      return refuse(c, r.status, r.reason, "Sign-in refused", r.message, { "set-cookie": clearState });
    }
    const identity = identityFromClaims(r.tokens.claims, settings.oidc);
    if (identity === null) return refuse(c, 403, "proxy_login_rejected:missing_subject", "Sign-in refused", "The identity provider named no subject.", { "set-cookie": clearState });
    // A new sign-in replaces the session this browser had on this host.
    const old = await deps.auth.authenticate({ cookie: cookieHeader }, c.var.info.host);
    if (old.kind === "session") await deps.sessions.end(old.session);
    const { id, session } = await deps.sessions.create("browser", c.var.info.host, identity, { idToken: r.tokens.idToken, refreshToken: r.tokens.refreshToken }, r.tokens.expiresAt, null);
    const sealed = await deps.cookies.seal({ s: id, h: c.var.info.host }, Math.floor(session.expiresAt / 1000));
    const cookies = [...clearState, setCookie(SESSION_COOKIE, sealed, Math.floor((session.expiresAt - Date.now()) / 1000))];
    deps.metrics.login("ok");
    if (r.attempt.stepUp && !deps.auth.mfa(identity)) {
      return page({ status: 403, title: "A second factor is required", message: "This needs multi-factor authentication, and your sign-in did not include it. Enrol a second factor with your identity provider, then sign in again.", code: "mfa_not_satisfied", loginUrl: loginUrl(r.attempt.returnTo, true), headers: { "set-cookie": cookies } }, html(c));
    }
    return redirect(r.attempt.returnTo, cookies);
  });

  app.get(`${PREFIX}/logout`, () => page({ status: 200, title: "Sign out", message: "Sign out of the access proxy on this host, and of the identity provider.", code: "logout", form: { action: `${PREFIX}/logout`, button: "Sign out" } }, true));

  app.post(`${PREFIX}/logout`, async (c) => {
    if (!sameOrigin(c)) return refuse(c, 403, "proxy_csrf", "Refused", "Sign-out must be asked from this site's own page.");
    const cred = await current(c);
    const clear = setCookie(SESSION_COOKIE, "", 0);
    const signedOut = `${originOf(c)}${PREFIX}/signed-out`;
    if (cred.kind !== "session") return redirect(signedOut, [clear]);
    const tokens = await deps.sessions.tokens(cred.session);
    await deps.sessions.endSignIn(cred.session);
    let next: URL | null = null;
    try {
      next = await deps.oidc.endSessionUrl(tokens?.idToken ?? null, signedOut);
    } catch {
      // The session is over here whatever the issuer says; its own session may outlive ours.
    }
    return redirect(next?.href ?? signedOut, [clear]);
  });

  app.get(`${PREFIX}/signed-out`, (c) => page({ status: 200, title: "Signed out", message: "You are signed out of the access proxy.", code: "signed_out", loginUrl: loginUrl("/") }, html(c)));

  app.get(`${PREFIX}/session`, async (c) => {
    const cred = await current(c);
    if (cred.kind === "unavailable") return unavailable(c, cred.message);
    if (cred.kind === "invalid") return refuse(c, 401, cred.reason, "Not signed in", cred.message);
    if (cred.kind === "none") return page({ status: 401, title: "Not signed in", message: "No session on this host.", code: "login_required", loginUrl: loginUrl("/") }, html(c));
    const id = cred.identity;
    const session = cred.kind === "session" ? cred.session : null;
    return c.json({
      subject: id.subject,
      email: id.email,
      roles: id.roles,
      amr: id.amr,
      mfa: deps.auth.mfa(id),
      auth_time: id.authTime === null ? null : new Date(id.authTime * 1000).toISOString(),
      kind: session?.kind ?? "token",
      incident: session?.incident ?? null,
      expires_at: session ? new Date(Math.min(session.expiresAt, session.idleExpiresAt)).toISOString() : null,
    }, 200, { "cache-control": "no-store" });
  });

  app.get(`${PREFIX}/incident`, () =>
    page({ status: 200, title: "Incident", message: "The incident your requests on this host refer to (requireIncident); it must be declared and active.", code: "incident", form: { action: `${PREFIX}/incident`, button: "Use this incident", field: { name: "incident", label: "Incident id" } } }, true),
  );

  app.post(`${PREFIX}/incident`, async (c) => {
    if (!sameOrigin(c) && c.req.header("authorization") === undefined && c.req.header("proxy-authorization") === undefined) {
      return refuse(c, 403, "proxy_csrf", "Refused", "The incident must be chosen from this site's own page.");
    }
    const cred = await current(c);
    if (cred.kind !== "session") return page({ status: 401, title: "Not signed in", message: "Sign in to choose an incident.", code: "login_required", loginUrl: loginUrl("/") }, html(c));
    const body = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const raw = typeof body.incident === "string" ? body.incident.trim() : "";
    if (raw !== "" && !INCIDENT_ID.test(raw)) return page({ status: 400, title: "Invalid incident", message: "An incident id is letters, digits and . _ : -", code: "invalid_incident" }, html(c));
    await deps.sessions.setIncident(cred.session, raw === "" ? null : raw);
    return c.json({ incident: raw === "" ? null : raw });
  });

  // The CLI's browser login (RFC 8252 loopback redirect): the CLI listens on 127.0.0.1:<port>
  // and sends the browser here with the S256 challenge of a verifier it keeps.
  app.get(`${PREFIX}/cli/login`, async (c) => {
    const port = Number(c.req.query("port"));
    const challenge = c.req.query("challenge") ?? "";
    const stepUp = c.req.query("step_up") === "mfa";
    if (!Number.isInteger(port) || port < 1024 || port > 65535 || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
      return page({ status: 400, title: "Invalid CLI login", message: "The CLI login needs a loopback port (1024-65535) and an S256 challenge.", code: "invalid_cli_login" }, html(c));
    }
    const cred = await current(c);
    if (cred.kind === "unavailable") return unavailable(c, cred.message);
    if (cred.kind !== "session" || cred.session.kind !== "browser" || (stepUp && !deps.auth.mfa(cred.identity))) {
      const here = `${PREFIX}/cli/login?port=${port}&challenge=${challenge}${stepUp ? "&step_up=mfa" : ""}`;
      return redirect(loginUrl(here, stepUp));
    }
    const code = randomBytes(32).toString("base64url");
    await deps.sql`INSERT INTO zt_proxy.cli_codes (code_hash, session_hash, challenge, expires_at)
      VALUES (${sessionHash(code)!}, ${cred.session.idHash}, ${challenge}, ${new Date(Date.now() + CLI_CODE_TTL_MS)})`;
    return redirect(`http://127.0.0.1:${port}/callback?code=${code}`);
  });

  app.post(`${PREFIX}/cli/token`, async (c) => {
    const body = (await c.req.json().catch(() => null)) as { code?: unknown; verifier?: unknown } | null;
    const codeHash = typeof body?.code === "string" ? sessionHash(body.code) : null;
    const verifier = typeof body?.verifier === "string" ? body.verifier : "";
    if (codeHash === null || !/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return page({ status: 400, title: "Invalid request", message: "code and verifier are required", code: "invalid_request" }, false);
    // Single use: the row is gone whatever happens next.
    const [row] = await deps.sql<{ session_hash: Buffer; challenge: string }[]>`
      DELETE FROM zt_proxy.cli_codes WHERE code_hash = ${codeHash} AND expires_at > now() RETURNING session_hash, challenge`;
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    if (!row || row.challenge !== challenge) return refuse(c, 400, "proxy_cli_code_invalid", "Invalid code", "The login code is unknown, used, expired, or not this CLI's.");
    const parent = await deps.sessions.byHash(row.session_hash);
    if (parent === null) return refuse(c, 400, "proxy_cli_code_invalid", "Invalid code", "The browser session behind this code has ended.");
    const { id, session } = await deps.sessions.create("cli", parent.host, parent.identity, null, null, parent);
    return c.json({ token: CLI_TOKEN_PREFIX + id, expires_at: new Date(session.expiresAt).toISOString(), subject: parent.identity.subject }, 200, { "cache-control": "no-store" });
  });

  return app;
}
