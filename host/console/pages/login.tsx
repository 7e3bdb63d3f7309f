// Sign in with the admin token (once; the session cookie carries a signed session, never the
// token), and sign out. Failed attempts are counted per client address and slowed down.
import type { Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { CSRF_FIELD, requireCsrf, requireSession } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl, safeNext } from "../paths.js";
import { LOGIN_COOKIE, LOGIN_SECONDS, SESSION_COOKIE, SESSION_SECONDS } from "../session.js";
import { page } from "../views/layout.js";
import { Notice } from "../views/parts.js";

const COOKIE = { path: "/", secure: true, httpOnly: true, sameSite: "Strict" } as const;

/** At most this many failed sign-ins per client address per window; then 429 until it passes. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 5 * 60 * 1000;

class FailureCounter {
  private readonly byAddress = new Map<string, { n: number; until: number }>();
  blocked(addr: string, now: number): boolean {
    const f = this.byAddress.get(addr);
    return f !== undefined && f.until > now && f.n >= MAX_FAILURES;
  }
  fail(addr: string, now: number): void {
    if (this.byAddress.size > 10_000) for (const [k, v] of this.byAddress) if (v.until <= now) this.byAddress.delete(k);
    const f = this.byAddress.get(addr);
    if (f === undefined || f.until <= now) this.byAddress.set(addr, { n: 1, until: now + FAILURE_WINDOW_MS });
    else f.n++;
  }
  clear(addr: string): void {
    this.byAddress.delete(addr);
  }
}

function LoginForm(props: { token: string; next: string; error: string | null; proxy: boolean }) {
  return (
    <section class="login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in to the ZT console</h1>
      <p class="muted">
        Paste the engine's admin token (<code>ZT_ADMIN_TOKEN</code>, or the file <code>zt serve</code> printed at start). It is checked
        once; the browser keeps only a signed session cookie for 8 hours.
      </p>
      {props.proxy && (
        <Notice kind="info">
          Operators sign in through the operator access proxy: open the console at its route's host name and sign in with your identity
          provider (the role zt-admin may change things; every other operator reads). The admin token is the engine's own credential.
        </Notice>
      )}
      {props.error !== null && <Notice kind="error">{props.error}</Notice>}
      <form method="post" action={consoleUrl("/login")}>
        <input type="hidden" name={CSRF_FIELD} value={props.token} />
        <input type="hidden" name="next" value={props.next} />
        <p>
          <label for="token">Admin token</label>
          <br />
          <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
        </p>
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}

export function loginRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  const failures = new FailureCounter();

  const form = (c: Context<ConsoleEnv>, next: string, error: string | null, status: 200 | 401 | 403 | 429 = 200) => {
    const { nonce, token } = deps.keys.loginNonce();
    setCookie(c, LOGIN_COOKIE, nonce, { ...COOKIE, maxAge: LOGIN_SECONDS });
    return page(c, deps, { title: "Sign in", active: null, status }, <LoginForm token={token} next={next} error={error} proxy={deps.proxySignIn !== null} />);
  };

  app.get("/login", (c) => {
    if (deps.keys.read(getCookie(c, SESSION_COOKIE)) !== null) return c.redirect(safeNext(c.req.query("next")), 303);
    return form(c, safeNext(c.req.query("next")), null);
  });

  app.post("/login", async (c) => {
    const addr = c.env?.incoming?.socket?.remoteAddress ?? "unknown";
    const now = Date.now();
    const body = await c.req.parseBody();
    const next = safeNext(typeof body.next === "string" ? body.next : null);
    if (!deps.keys.checkLogin(getCookie(c, LOGIN_COOKIE), typeof body[CSRF_FIELD] === "string" ? (body[CSRF_FIELD] as string) : null)) {
      return form(c, next, "The sign-in form expired or did not come from this console. Try again.", 403);
    }
    if (failures.blocked(addr, now)) return form(c, next, "Too many failed attempts from this address; wait a few minutes.", 429);
    const token = typeof body.token === "string" ? body.token : "";
    if (!deps.isAdminToken(token)) {
      failures.fail(addr, now);
      deps.core.log.info("console sign-in refused", { address: addr });
      return form(c, next, "That is not the admin token.", 401);
    }
    failures.clear(addr);
    const { cookie, session } = deps.keys.issue("admin-token", "admin");
    deleteCookie(c, LOGIN_COOKIE, { path: "/", secure: true });
    setCookie(c, SESSION_COOKIE, cookie, { ...COOKIE, maxAge: SESSION_SECONDS });
    deps.core.log.info("console sign-in", { sub: session.sub, role: session.role, address: addr });
    return c.redirect(next, 303);
  });

  app.post("/logout", requireSession(deps.keys, deps.proxySignIn), requireCsrf(deps.keys), (c) => {
    const session = c.get("session");
    if (session !== null) deps.keys.revoke(session);
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: true });
    return c.redirect(consoleUrl("/login"), 303);
  });
}
