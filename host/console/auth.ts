// Who is using the console, and may they do this: the session from its cookie, a sign-in
// redirect for pages, the CSRF token on every write, and the admin role for changes.
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { ConsoleEnv } from "./context.js";
import { consoleUrl } from "./paths.js";
import { ASSERTION_HEADER } from "../proxy/index.js";
import { type ProxySignIn, sessionFromAssertion } from "./proxy-session.js";
import { SESSION_COOKIE, type SessionKeys } from "./session.js";

/** The CSRF token travels as this form field, or as this header for scripts. */
export const CSRF_FIELD = "_csrf";
export const CSRF_HEADER = "x-csrf-token";

function isRead(method: string): boolean {
  return method === "GET" || method === "HEAD";
}

function refuse(c: Context<ConsoleEnv>, status: 401 | 403, code: string, message: string): Response {
  c.header("cache-control", "no-store");
  return c.json({ error: { code, message } }, status);
}

/**
 * Sets `session` from the console's cookie, else (with the access proxy configured) from the
 * proxy's signed assertion; a page without either redirects to the sign-in page, anything else
 * is 401. An assertion that does not verify is 401 with the reason, never a session.
 */
export function requireSession(keys: SessionKeys, proxy: ProxySignIn | null = null): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    let session = keys.read(getCookie(c, SESSION_COOKIE));
    const assertion = proxy === null ? undefined : c.req.header(ASSERTION_HEADER);
    if (session === null && proxy !== null && assertion !== undefined) {
      const r = await sessionFromAssertion(proxy, assertion, (sub) => keys.proxySid(sub));
      if (!r.ok) return refuse(c, 401, "invalid_assertion", r.reason);
      session = r.session;
    }
    if (session === null) {
      if (isRead(c.req.method)) {
        const url = new URL(c.req.url);
        return c.redirect(consoleUrl("/login", { next: url.pathname + url.search }), 303);
      }
      return refuse(c, 401, "unauthenticated", "sign in to the console first");
    }
    c.set("session", session);
    c.set("caller", `console:${session.sub}`);
    await next();
  };
}

/**
 * The origin the browser sees. Behind the access proxy (a session from its verified assertion)
 * that is the route's public host, which the proxy sets in X-Forwarded-Host after dropping any
 * the client sent; otherwise the request's own.
 */
function ownOrigin(c: Context<ConsoleEnv>): string {
  const host = c.get("session")?.via === "proxy" ? c.req.header("x-forwarded-host") : undefined;
  return host !== undefined ? `${c.req.header("x-forwarded-proto") ?? "https"}://${host}` : new URL(c.req.url).origin;
}

/**
 * Every write carries the session's synchronizer token (form field or header), and comes from
 * this origin when the browser says where it comes from (Sec-Fetch-Site, Origin).
 */
export function requireCsrf(keys: SessionKeys): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    if (isRead(c.req.method)) return next();
    const site = c.req.header("sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") return refuse(c, 403, "cross_site", "writes are accepted from the console's own pages only");
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== "null" && origin !== ownOrigin(c)) {
      return refuse(c, 403, "cross_site", "writes are accepted from the console's own pages only");
    }
    const session = c.get("session");
    let sent = c.req.header(CSRF_HEADER) ?? null;
    if (sent === null && /^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(c.req.header("content-type") ?? "")) {
      const field = (await c.req.parseBody())[CSRF_FIELD];
      sent = typeof field === "string" ? field : null;
    }
    if (session === null || !keys.checkCsrf(session, sent)) {
      return refuse(c, 403, "csrf_token_invalid", "this write lacks the console's CSRF token; reload the page and try again");
    }
    await next();
  };
}

/** Changes (rollback, incidents, rollout settings) need the admin role. */
export function requireAdmin(): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    if (c.get("session")?.role !== "admin") return refuse(c, 403, "not_admin", "this change needs the zt-admin role");
    await next();
  };
}
