// authenticate/: sign-in against a real OpenID Provider through the proxy on the engine's mTLS
// port, sessions in PostgreSQL, and every way to get it wrong refused, audited, never proxied.
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { SignJWT, importJWK, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, APP, audited, CookieJar, type ProxyHarness, proxyRequest, startProxyHarness } from "./harness.js";
import { CLIENT_ID } from "./idp.js";
import { atIdp, login, startLogin } from "./login-flow.js";

let h: ProxyHarness;
beforeAll(async () => {
  h = await startProxyHarness({ env: { ZT_PROXY_SESSION_CACHE_MS: "0", ZT_PROXY_TRUSTED_PROXIES: "127.0.0.2" } });
});
afterAll(async () => h?.dispose());

const JSON_ACCEPT = { accept: "application/json" };
const SESSION = "__Host-zt-session";

/** Requests the upstream saw so far (to prove a refused request never reached it). */
const seen = (): number => h.upstream.seen.length;

async function sessionRows(): Promise<number> {
  const [r] = await h.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM zt_proxy.sessions`;
  return Number(r!.n);
}

describe("sign-in", () => {
  it("sets one small __Host- session cookie (Secure, HttpOnly, SameSite=Lax) and returns to the page asked for", async () => {
    const r = await login(h, APP, "sre", { rd: "/dashboards?x=1" });
    expect(r.callback!.status).toBe(302);
    expect(r.callback!.headers.location).toBe("/dashboards?x=1");
    const set = (r.callback!.headers["set-cookie"] ?? []).find((c) => c.startsWith(`${SESSION}=`))!;
    expect(set).toMatch(/; Path=\/; Secure; HttpOnly; SameSite=Lax$/);
    expect(set).not.toMatch(/domain=/i);
    // Server-side sessions: the cookie is a sealed id, not the identity (oauth2-proxy's grow past 4 KB).
    expect(set.length).toBeLessThan(400);
    const me = await proxyRequest(h, APP, "/.zt/session", { jar: r.jar, headers: JSON_ACCEPT });
    expect(me.json()).toMatchObject({ subject: "sre@hanzo.test", roles: ["sre"], amr: ["pwd"], mfa: false, kind: "browser" });
    // The state cookie of the attempt is gone.
    expect(r.jar.names(`${APP}:${h.port}`).filter((n) => n.startsWith("__Host-zt-login-"))).toEqual([]);
  });

  it("several tabs sign in at once: one state cookie per attempt, each callback finds its own", async () => {
    const jar = new CookieJar();
    const starts = await Promise.all(["/a", "/b", "/c"].map((rd) => startLogin(h, APP, jar, rd)));
    expect(jar.names(`${APP}:${h.port}`).filter((n) => n.startsWith("__Host-zt-login-"))).toHaveLength(3);
    // Each tab signs in at the IdP (its own IdP cookies), then they come back in the reverse order.
    const callbacks: URL[] = [];
    for (const s of starts) callbacks.push(await atIdp(h, s, "dev", new CookieJar()));
    for (const [i, cb] of [...callbacks].reverse().entries()) {
      const r = await proxyRequest(h, APP, cb.pathname + cb.search, { jar });
      expect(r.status).toBe(302);
      expect(r.headers.location).toBe(["/c", "/b", "/a"][i]);
    }
  });

  it("a replayed callback is refused and audited", async () => {
    const t = await login(h, APP, "dev", { stopAtCallback: true });
    const cookies = t.jar.header(`${APP}:${h.port}`)!;
    const path = t.callbackUrl.pathname + t.callbackUrl.search;
    const first = await proxyRequest(h, APP, path, { headers: { cookie: cookies } });
    expect(first.status).toBe(302);
    const again = await proxyRequest(h, APP, path, { headers: { cookie: cookies, ...JSON_ACCEPT } });
    expect(again.status).toBe(400);
    const err = again.json<{ error: { code: string; decision_id: string } }>().error;
    expect(err.code).toBe("proxy_login_replayed");
    const rec = (await audited(h, [err.decision_id])).get(err.decision_id)!;
    expect(rec).toMatchObject({ decision: "DENY", reason: "proxy_login_replayed", enforced: true, operator: { subject: "anonymous@127.0.0.1" } });
  });

  it("a callback without its state cookie (another browser, expired, forged) is refused", async () => {
    const t = await login(h, APP, "dev", { stopAtCallback: true });
    const r = await proxyRequest(h, APP, t.callbackUrl.pathname + t.callbackUrl.search, { headers: JSON_ACCEPT });
    expect(r.status).toBe(400);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("proxy_login_state_missing");
    const forged = await proxyRequest(h, APP, "/.zt/callback?code=abc&state=xyz", { headers: { ...JSON_ACCEPT, cookie: "__Host-zt-login-whatever=1" } });
    expect(forged.status).toBe(400);
  });

  it("refuses a return URL that leaves the host (open redirect), audited", async () => {
    for (const rd of ["https://evil.test/", "//evil.test/x", "/\\evil.test", "/%2fevil.test", "javascript:alert(1)"]) {
      const r = await proxyRequest(h, APP, `/.zt/login?rd=${encodeURIComponent(rd)}`, { headers: JSON_ACCEPT });
      expect(r.status, rd).toBe(400);
      const err = r.json<{ error: { code: string; decision_id: string } }>().error;
      expect(err.code).toBe("proxy_open_redirect");
      expect((await audited(h, [err.decision_id])).get(err.decision_id)?.reason).toBe("proxy_open_redirect");
    }
    const ok = await proxyRequest(h, APP, `/.zt/login?rd=${encodeURIComponent("/a/b?c=d")}`);
    expect(ok.status).toBe(302);
  });
});

describe("no session", () => {
  it("a browser is sent to sign in; a script gets 401 JSON with the login URL, not a 302", async () => {
    const nav = await proxyRequest(h, APP, "/reports/1?x=2", { headers: { accept: "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate" } });
    expect(nav.status).toBe(302);
    expect(nav.headers.location).toBe(`/.zt/login?rd=${encodeURIComponent("/reports/1?x=2")}`);
    const scripts: Array<Record<string, string>> = [JSON_ACCEPT, { accept: "text/html", "x-requested-with": "XMLHttpRequest" }, { accept: "*/*", "sec-fetch-mode": "cors" }];
    for (const headers of scripts) {
      const r = await proxyRequest(h, APP, "/api/x", { headers });
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toContain("Bearer");
    }
    const script = await proxyRequest(h, APP, "/api/x", { headers: JSON_ACCEPT });
    expect(script.json()).toEqual({ error: { code: "login_required", message: expect.any(String), login_url: `/.zt/login?rd=${encodeURIComponent("/api/x")}` } });
    const post = await proxyRequest(h, APP, "/api/x", { method: "POST", body: "{}", headers: { accept: "text/html" } });
    expect(post.status).toBe(401);
  });

  it("an unknown host is never proxied: refused by the proxy alone, by the engine's identity gate beside the API", async () => {
    // SNI of a proxy name, Host of no route: not the proxy's request, so the API's gate answers
    // (the connection holds no SVID), and the API behind it stays closed the same way.
    const before = seen();
    for (const authority of [`nothing.zt.test:${h.port}`, `127.0.0.1:${h.port}`]) {
      const r = await proxyRequest(h, APP, "/v1/policies", { headers: JSON_ACCEPT, authority });
      expect(r.status, authority).toBe(401);
      expect(r.json<{ error: { code: string } }>().error.code).toBe("invalid_client_svid");
    }
    expect(seen()).toBe(before);
    // A name the proxy does not serve gets the engine's own certificate, which a browser does not trust.
    await expect(proxyRequest(h, "nothing.zt.test", "/")).rejects.toThrow();
  });
});

describe("bad credentials are refused, audited, never proxied", () => {
  let jar: CookieJar;
  beforeAll(async () => {
    jar = (await login(h, APP, "sre")).jar;
  });

  it("a tampered session cookie", async () => {
    const before = seen();
    const good = jar.get(`${APP}:${h.port}`, SESSION)!;
    const tampered = good.slice(0, -4) + (good.endsWith("AAAA") ? "BBBB" : "AAAA");
    const r = await proxyRequest(h, APP, "/x", { headers: { ...JSON_ACCEPT, cookie: `${SESSION}=${tampered}` } });
    expect(r.status).toBe(401);
    const err = r.json<{ error: { code: string; decision_id: string } }>().error;
    expect(err.code).toBe("proxy_invalid_cookie");
    expect((await audited(h, [err.decision_id])).get(err.decision_id)).toMatchObject({ decision: "DENY", reason: "proxy_invalid_cookie", target: { service: "gateway", action: "read" } });
    expect(seen()).toBe(before);
  });

  it("a session cookie copied to another route host", async () => {
    const before = seen();
    const r = await proxyRequest(h, ADMIN, "/x", { headers: { ...JSON_ACCEPT, cookie: `${SESSION}=${jar.get(`${APP}:${h.port}`, SESSION)}` } });
    expect(r.status).toBe(401);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("proxy_cookie_host_mismatch");
    expect(seen()).toBe(before);
  });

  describe("ID tokens presented as bearer tokens (scripts)", () => {
    let idpKey: CryptoKey;
    let otherKey: CryptoKey;
    beforeAll(async () => {
      idpKey = (await importJWK(h.idp.signingJwk, "RS256")) as CryptoKey;
      const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
      otherKey = createPrivateKey(other.privateKey.export({ type: "pkcs8", format: "pem" })) as unknown as CryptoKey;
    });
    const mint = (o: { key?: CryptoKey; iss?: string; aud?: string; exp?: number; iat?: number; sub?: string } = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ email: "sre@hanzo.test", roles: ["sre"] })
        .setProtectedHeader({ alg: "RS256", kid: (h.idp.signingJwk as JWK).kid! })
        .setIssuer(o.iss ?? h.idp.issuer)
        .setAudience(o.aud ?? CLIENT_ID)
        .setSubject(o.sub ?? "sre")
        .setIssuedAt(o.iat ?? now - 10)
        .setExpirationTime(o.exp ?? now + 300)
        .sign(o.key ?? idpKey);
    };

    it("a valid ID token of the issuer passes, and the upstream gets the assertion", async () => {
      const r = await proxyRequest(h, APP, "/logs/via-token", { headers: { ...JSON_ACCEPT, authorization: `Bearer ${await mint()}` } });
      expect(r.status).toBe(200);
      expect(r.json<{ claims: { sub: string } }>().claims.sub).toBe("sre@hanzo.test");
      // The proxy's credential is not passed upstream.
      expect(h.upstream.seen.at(-1)!.headers.authorization).toBeUndefined();
    });

    it.each([
      ["forged (another key)", { key: "other" }, "bad_signature"],
      ["expired", { exp: -100, iat: -400 }, "token_expired"],
      ["for another audience", { aud: "someone-else" }, "audience_mismatch"],
      ["from another issuer", { iss: "https://evil.test" }, "issuer_mismatch"],
    ] as const)("%s", async (_name, o, reason) => {
      const now = Math.floor(Date.now() / 1000);
      const token = await mint({
        key: "key" in o ? otherKey : undefined,
        aud: "aud" in o ? o.aud : undefined,
        iss: "iss" in o ? o.iss : undefined,
        exp: "exp" in o ? now + o.exp : undefined,
        iat: "iat" in o ? now + o.iat : undefined,
      });
      const before = seen();
      const r = await proxyRequest(h, APP, "/x", { headers: { ...JSON_ACCEPT, authorization: `Bearer ${token}` } });
      expect(r.status).toBe(401);
      const err = r.json<{ error: { code: string; decision_id: string } }>().error;
      expect(err.code).toBe(`proxy_invalid_token:${reason}`);
      expect((await audited(h, [err.decision_id])).get(err.decision_id)?.reason).toBe(`proxy_invalid_token:${reason}`);
      expect(seen()).toBe(before);
    });

    it("an unknown CLI token", async () => {
      const r = await proxyRequest(h, APP, "/x", { headers: { ...JSON_ACCEPT, "proxy-authorization": `Bearer ztp_${"A".repeat(43)}` } });
      expect(r.status).toBe(401);
      expect(r.json<{ error: { code: string } }>().error.code).toBe("proxy_invalid_token:unknown_session");
    });
  });
});

describe("sessions end", () => {
  it("sign-out is a same-origin POST: the session ends server-side, then RP-initiated logout at the issuer", async () => {
    const { jar } = await login(h, APP, "sre");
    const rows = await sessionRows();
    const csrf = await proxyRequest(h, APP, "/.zt/logout", { method: "POST", jar, headers: { ...JSON_ACCEPT, origin: "https://evil.test" } });
    expect(csrf.status).toBe(403);
    expect(csrf.json<{ error: { code: string } }>().error.code).toBe("proxy_csrf");
    const cookieBefore = jar.get(`${APP}:${h.port}`, SESSION)!;
    const out = await proxyRequest(h, APP, "/.zt/logout", { method: "POST", jar, headers: { origin: h.origin(APP) } });
    expect(out.status).toBe(302);
    const end = new URL(out.headers.location!);
    expect(end.origin).toBe(h.idp.issuer);
    expect(end.pathname).toBe("/session/end");
    expect(end.searchParams.get("post_logout_redirect_uri")).toBe(`${h.origin(APP)}/.zt/signed-out`);
    expect(end.searchParams.get("id_token_hint")).toBeTruthy();
    expect(await sessionRows()).toBe(rows - 1);
    // The old cookie, replayed, is no session at all.
    const replay = await proxyRequest(h, APP, "/x", { headers: { ...JSON_ACCEPT, cookie: `${SESSION}=${cookieBefore}` } });
    expect(replay.status).toBe(401);
    expect(replay.json<{ error: { code: string } }>().error.code).toBe("login_required");
  });

  it("after the idle time, and after the absolute lifetime", async () => {
    for (const column of ["idle_expires_at", "expires_at"]) {
      const { jar } = await login(h, APP, "sre");
      expect((await proxyRequest(h, APP, "/logs/ok", { jar, headers: JSON_ACCEPT })).status).toBe(200);
      await h.sql.unsafe(`UPDATE zt_proxy.sessions SET ${column} = now() - interval '1 second'`);
      const r = await proxyRequest(h, APP, "/logs/ok", { jar, headers: JSON_ACCEPT });
      expect(r.status, column).toBe(401);
    }
  });

  it("is refreshed with the refresh token when the ID token is due, and ends when it cannot be", async () => {
    const { jar } = await login(h, APP, "sre");
    const [before] = await h.sql<{ t: Date }[]>`SELECT tokens_expire_at AS t FROM zt_proxy.sessions ORDER BY created_at DESC LIMIT 1`;
    await h.sql`UPDATE zt_proxy.sessions SET tokens_expire_at = now() WHERE tokens_expire_at = ${before!.t}`;
    expect((await proxyRequest(h, APP, "/logs/after-refresh", { jar, headers: JSON_ACCEPT })).status).toBe(200);
    const [after] = await h.sql<{ t: Date }[]>`SELECT tokens_expire_at AS t FROM zt_proxy.sessions ORDER BY created_at DESC LIMIT 1`;
    expect(after!.t.getTime()).toBeGreaterThan(Date.now() + 60_000);
    // Tokens that no longer open (a changed secret, a corrupted row): sign in again.
    await h.sql`UPDATE zt_proxy.sessions SET tokens = 'garbage', tokens_expire_at = now() WHERE tokens_expire_at = ${after!.t}`;
    expect((await proxyRequest(h, APP, "/x", { jar, headers: JSON_ACCEPT })).status).toBe(401);
  });
});

describe("behind a load balancer", () => {
  it("believes X-Forwarded-* only from the configured proxies", async () => {
    const { jar } = await login(h, APP, "dev");
    const spoof = { ...JSON_ACCEPT, "x-forwarded-for": "203.0.113.9", "x-forwarded-host": ADMIN, "x-zt-incident": "INC-1" };
    // From an untrusted peer the headers are ignored: the route is APP's (dev may read logs of gateway).
    const direct = await proxyRequest(h, APP, "/logs/today", { jar, headers: spoof });
    expect(direct.status).toBe(200);
    expect(h.upstream.seen.at(-1)!.headers["x-forwarded-for"]).toBe("127.0.0.1");
    // From the trusted balancer (127.0.0.2) the client address is the forwarded one.
    const lb = await proxyRequest(h, APP, "/logs/today", { jar, headers: { ...JSON_ACCEPT, "x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https" }, localAddress: "127.0.0.2" });
    expect(lb.status).toBe(200);
    expect(h.upstream.seen.at(-1)!.headers["x-forwarded-for"]).toBe("203.0.113.9");
    // A balancer that says the client used plain HTTP gets a refusal, not a redirect (no loop).
    const http = await proxyRequest(h, APP, "/x", { jar, headers: { ...JSON_ACCEPT, "x-forwarded-proto": "http" }, localAddress: "127.0.0.2" });
    expect(http.status).toBe(403);
    expect(http.headers.location).toBeUndefined();
  });
});
