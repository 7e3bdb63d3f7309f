// A sign-in through the proxy driven from Node, as a browser would do it (redirects followed
// by hand, cookies kept per host, the IdP's forms posted): for the tests that need many logins
// quickly. The browser tests (browser.test.ts) do the same with Chromium.
import { CookieJar, httpsRequest, type ProxyHarness, type ProxyReply, proxyRequest } from "./harness.js";
import { OTP, USERS } from "./idp.js";

export interface LoginOptions {
  readonly jar?: CookieJar;
  readonly rd?: string;
  readonly stepUp?: boolean;
  /** The code to give when the IdP asks for the second factor (default: the right one). */
  readonly otp?: string;
  /** Stop at the callback: return its URL without calling the proxy (replay tests). */
  readonly stopAtCallback?: boolean;
}

export interface LoginResult {
  readonly jar: CookieJar;
  /** The proxy's answer to the callback. */
  readonly callback: ProxyReply | null;
  readonly callbackUrl: URL;
}

/** GET (or POST a form) on the IdP, the proxy, or a CLI's loopback port, by absolute URL. */
async function get(h: ProxyHarness, jar: CookieJar, url: URL, form?: Record<string, string>): Promise<ProxyReply> {
  const o = form
    ? { method: "POST", body: new URLSearchParams(form).toString(), headers: { "content-type": "application/x-www-form-urlencoded" }, jar }
    : { jar };
  if (url.protocol === "http:") {
    const r = await fetch(url, { redirect: "manual" });
    const body = await r.text();
    const headers: Record<string, string> = {};
    r.headers.forEach((v, k) => (headers[k] = v));
    return { status: r.status, headers, body, json: <T>() => JSON.parse(body) as T };
  }
  if (url.hostname === "127.0.0.1") return httpsRequest({ host: "127.0.0.1", port: Number(url.port), ca: h.web.pem, authority: url.host }, url.pathname + url.search, o);
  return proxyRequest(h, url.hostname, url.pathname + url.search, o);
}

/**
 * A browser given a URL: follows redirects across the proxy, the IdP (signing in as `user`) and
 * a CLI's loopback port, until a page that is not a redirect, or a URL `stop` accepts (not
 * fetched: its reply is null).
 */
export async function browse(h: ProxyHarness, start: URL, user: string, jar: CookieJar, otp?: string, stop?: (url: URL) => boolean): Promise<{ reply: ProxyReply | null; url: URL }> {
  let url = start;
  for (let hops = 0; hops < 30; hops++) {
    if (stop?.(url)) return { reply: null, url };
    let r = await get(h, jar, url);
    if (r.status === 200 && r.body.includes('action="/interaction/')) {
      const action = /action="([^"]+)"/.exec(r.body)![1]!;
      const base = `${url.protocol}//${url.host}`;
      if (action.endsWith("/login")) r = await get(h, jar, new URL(base + action), { user, password: USERS[user]!.password });
      if (r.status === 200 && /action="[^"]+\/otp"/.test(r.body)) r = await get(h, jar, new URL(base + /action="([^"]+)"/.exec(r.body)![1]!), { otp: otp ?? OTP });
    }
    if (r.status < 300 || r.status >= 400) return { reply: r, url };
    url = new URL(r.headers.location!, url);
  }
  throw new Error("browse: too many redirects");
}

/** From the issuer URL the proxy redirected to, through the IdP's pages, to the proxy's callback URL. */
export async function atIdp(h: ProxyHarness, start: URL, user: string, jar: CookieJar, otp?: string): Promise<URL> {
  const r = await browse(h, start, user, jar, otp, (u) => u.pathname === "/.zt/callback");
  if (r.reply !== null) throw new Error(`login at ${r.url.pathname}: ${r.reply.status} ${r.reply.body.slice(0, 300)}`);
  return r.url;
}

/** GET /.zt/login on the proxy: the issuer URL it redirects to (and the attempt's state cookie in `jar`). */
export async function startLogin(h: ProxyHarness, host: string, jar: CookieJar, rd = "/", stepUp = false): Promise<URL> {
  const start = await proxyRequest(h, host, `/.zt/login?rd=${encodeURIComponent(rd)}${stepUp ? "&step_up=mfa" : ""}`, { jar });
  if (start.status !== 302) throw new Error(`login start: ${start.status} ${start.body}`);
  return new URL(start.headers.location!);
}

export async function login(h: ProxyHarness, host: string, user: string, opts: LoginOptions = {}): Promise<LoginResult> {
  const jar = opts.jar ?? new CookieJar();
  const callbackUrl = await atIdp(h, await startLogin(h, host, jar, opts.rd, opts.stepUp), user, jar, opts.otp);
  if (opts.stopAtCallback) return { jar, callback: null, callbackUrl };
  return { jar, callback: await get(h, jar, callbackUrl), callbackUrl };
}
