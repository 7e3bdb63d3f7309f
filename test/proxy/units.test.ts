// The proxy's pure parts, against references and generated inputs: path normalisation (WHATWG URL
// resolution), return URLs (never another origin), forwarded headers (only from trusted peers),
// identity headers (never upstream), cookies, sealing, claims, and the settings' errors.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCookies, withoutProxyCookies } from "../../host/proxy/authenticate/cookies.js";
import { hasMfa, identityFromClaims } from "../../host/proxy/authenticate/identity.js";
import { safeReturnTo } from "../../host/proxy/authenticate/return-to.js";
import { createSealer } from "../../host/proxy/authenticate/seal.js";
import { stateCookieName } from "../../host/proxy/authenticate/login.js";
import { loadProxySettings, ProxyConfigError, type OidcSettings } from "../../host/proxy/config.js";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "../../host/proxy/forward/headers.js";
import { normalisePath, upstreamPath } from "../../host/proxy/forward/path.js";
import { hostOf, requestInfo } from "../../host/proxy/request-info.js";
import { BlockList } from "node:net";

describe("path normalisation", () => {
  /** The reference: what a WHATWG URL parser makes of the path after merging repeated slashes. */
  const reference = (p: string): string => new URL(p.replace(/\/{2,}/g, "/"), "https://ref.invalid").pathname;
  const seg = fc.constantFrom("a", "b", "logs", ".", "..", "", "x%20y", "%C3%A9", "~u", "a.b");

  it("matches URL resolution on generated paths; segments are the decoded path", () => {
    fc.assert(
      fc.property(fc.array(seg, { minLength: 1, maxLength: 8 }), fc.constantFrom("", "?q=1", "?a=b&c=/d"), (segs, query) => {
        const raw = "/" + segs.join("/") + query;
        const r = normalisePath(raw);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.path).toBe(reference("/" + segs.join("/")));
        expect(r.query).toBe(query);
        expect("/" + r.segments.map((s) => encodeURIComponent(s)).join("/")).toBe(r.path.split("/").map((s) => encodeURIComponent(decodeURIComponent(s))).join("/"));
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses what could mean two things", () => {
    for (const p of ["/a%2fb", "/a%2Fb", "/a%5cb", "/%2e%2e/x", "/a%00", "/a\\b", "/a b", "http://evil/x", "*", "/a\u0001", "/é"]) expect(normalisePath(p).ok, p).toBe(false);
    expect(normalisePath("/a%zz").ok).toBe(false);
  });

  it("builds the upstream path from the base, the prefix and the query", () => {
    expect(upstreamPath("/base", "/admin/x", "/admin/", true, "?q=1")).toBe("/base/x?q=1");
    expect(upstreamPath("/", "/admin", "/admin/", true, "")).toBe("/");
    expect(upstreamPath("/", "/admin/x", "/admin/", false, "")).toBe("/admin/x");
    expect(upstreamPath("", "/", "/", true, "")).toBe("/");
  });
});

describe("return URLs", () => {
  it("never leave the host, whatever the input", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom("", "/", "//", "/\\", "\\", "https://", "/%2f", "/%5c", "javascript:", " /"), (tail, head) => {
        const r = safeReturnTo(head + tail);
        if (r === null) return;
        expect(r.startsWith("/")).toBe(true);
        expect(new URL(r, "https://route.test").origin).toBe("https://route.test");
        // A browser resolves it the same way the proxy checked it.
        expect(r.startsWith("//") || r.startsWith("/\\")).toBe(false);
      }),
      { numRuns: 5000 },
    );
  });

  it("keeps ordinary paths and queries", () => {
    expect(safeReturnTo("/a/b?c=d&e=%2F")).toBe("/a/b?c=d&e=%2F");
    expect(safeReturnTo(undefined)).toBe("/");
    expect(safeReturnTo("/.zt/cli/login?port=1&challenge=x")).toBe("/.zt/cli/login?port=1&challenge=x");
  });
});

describe("request info", () => {
  const trusted = new BlockList();
  trusted.addSubnet("10.0.0.0", 8, "ipv4");

  it("believes X-Forwarded-* only from trusted peers, and takes the first untrusted hop", () => {
    const h = { host: "app.test:8054", "x-forwarded-for": "203.0.113.1, 10.1.1.1", "x-forwarded-proto": "http", "x-forwarded-host": "evil.test" };
    expect(requestInfo(h, "198.51.100.7", trusted, true)).toEqual({ remote: "198.51.100.7", proto: "https", authority: "app.test:8054", host: "app.test" });
    expect(requestInfo(h, "10.2.2.2", trusted, true)).toEqual({ remote: "203.0.113.1", proto: "http", authority: "evil.test", host: "evil.test" });
    expect(requestInfo({ host: "a.test" }, "::ffff:10.9.9.9", trusted, true).remote).toBe("10.9.9.9");
  });

  it("host names: lower case, no port, no trailing dot, IPv6 brackets", () => {
    expect(hostOf("App.Test:8054")).toBe("app.test");
    expect(hostOf("app.test.")).toBe("app.test");
    expect(hostOf("[::1]:8054")).toBe("::1");
  });
});

describe("headers", () => {
  const identity = fc.constantFrom("x-zt-jwt-assertion", "x-zt-anything", "x-forwarded-user", "x-forwarded-for", "x-goog-iap-jwt-assertion", "x-pomerium-jwt-assertion", "x-auth-request-email", "impersonate-user", "impersonate-extra-scopes", "remote-user", "forwarded", "x-real-ip", "x-amzn-oidc-data", "proxy-authorization");
  it("no identity header a client sends reaches the upstream (generated mixes)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(identity, { maxLength: 8 }), fc.uniqueArray(fc.constantFrom("accept", "x-app", "content-type", "user-agent"), { maxLength: 4 }), (bad, good) => {
        const incoming: Record<string, string> = {};
        for (const b of bad) incoming[b] = "forged";
        for (const g of good) incoming[g] = "ok";
        const out = upstreamRequestHeaders(incoming, { host: "u", consumedAuthorization: false, upgrade: false, add: { "x-zt-jwt-assertion": "real" } });
        for (const b of bad) if (b !== "x-zt-jwt-assertion") expect(out[b], b).toBeUndefined();
        expect(out["x-zt-jwt-assertion"]).toBe("real");
        for (const g of good) expect(out[g]).toBe("ok");
      }),
    );
  });

  it("drops hop-by-hop and Connection-listed headers both ways; upstreams cannot set the proxy's cookies", () => {
    const out = upstreamRequestHeaders({ connection: "keep-alive, x-hop", "x-hop": "1", te: "trailers", "keep-alive": "5", upgrade: "websocket" }, { host: "u", consumedAuthorization: false, upgrade: false, add: {} });
    expect(Object.keys(out)).toEqual(["host"]);
    const down = downstreamResponseHeaders(["Connection", "close, X-Internal", "X-Internal", "1", "Set-Cookie", "a=1", "Set-Cookie", "__Host-zt-session=x", "Set-Cookie", "b=2", "Transfer-Encoding", "chunked"]);
    expect(down).toEqual({ "set-cookie": ["a=1", "b=2"] });
  });

  it("cookies: the proxy's are never forwarded; others keep their order", () => {
    expect(withoutProxyCookies("a=1; __Host-zt-session=x; b=2; __Host-zt-login-abc=y")).toBe("a=1; b=2");
    expect(withoutProxyCookies("__Host-zt-session=x")).toBeNull();
    expect(parseCookies("a=1; a=2; b=c=d")).toEqual({ a: "1", b: "c=d" });
    expect(stateCookieName("s1")).not.toBe(stateCookieName("s2"));
    expect(stateCookieName("s1")).not.toContain("s1");
  });
});

describe("sealing", () => {
  const k1 = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  it("opens what it sealed; refuses tampering, another purpose, expiry; a rotated secret still opens", async () => {
    const s = createSealer([k1], "session-cookie");
    const v = await s.seal({ s: "id" }, Math.floor(Date.now() / 1000) + 60);
    expect((await s.open(v))?.s).toBe("id");
    const parts = v.split(".");
    parts[3] = parts[3]!.slice(0, -2) + (parts[3]!.endsWith("AA") ? "BB" : "AA");
    expect(await s.open(parts.join("."))).toBeNull();
    expect(await createSealer([k1], "login-state").open(v)).toBeNull();
    expect(await s.open(await s.seal({ s: "x" }, Math.floor(Date.now() / 1000) - 10))).toBeNull();
    expect((await createSealer([k2, k1], "session-cookie").open(v))?.s).toBe("id");
    expect(await createSealer([k2], "session-cookie").open(v)).toBeNull();
    expect(await s.open("not.a.jwe")).toBeNull();
  });
});

describe("identity from claims", () => {
  const cfg: OidcSettings = {
    issuer: new URL("https://idp.test"),
    clientId: "c",
    clientSecret: "s",
    caPem: null,
    scopes: ["openid"],
    subjectClaim: "email",
    rolesClaim: "realm_access.roles",
    groupsClaim: "groups",
    groupRoles: new Map([["ops", ["sre", "oncall"]]]),
    mfaAmr: new Set(["otp", "hwk"]),
    mfaAcr: null,
    mfaMaxAgeSec: 3600,
    tokenAudiences: ["c"],
    tokenMaxLifetimeSec: 3600,
  };
  it("subject, roles from a nested claim and groups, MFA only with an accepted amr signed in recently", () => {
    const id = identityFromClaims({ sub: "u1", email: "a@b.test", realm_access: { roles: ["developer"] }, groups: ["ops", "other"], amr: ["pwd", "otp"], auth_time: 1000, sid: "s1" }, cfg)!;
    expect(id).toMatchObject({ subject: "a@b.test", roles: ["developer", "sre", "oncall"], amr: ["pwd", "otp"], authTime: 1000, idpSid: "s1" });
    expect(hasMfa(id, cfg, 1000 + 3600)).toBe(true);
    expect(hasMfa(id, cfg, 1000 + 3601)).toBe(false);
    expect(hasMfa({ amr: ["pwd"], authTime: 1000 }, cfg, 1001)).toBe(false);
    expect(hasMfa({ amr: ["otp"], authTime: null }, cfg, 1001)).toBe(false);
    expect(identityFromClaims({ email: "x@y" }, cfg)).toBeNull();
    expect(identityFromClaims({ sub: "u2" }, cfg)!.subject).toBe("u2");
  });
});

describe("settings", () => {
  it("report every problem at once, naming the variable and never a secret", () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-proxy-cfg-"));
    const secret = join(dir, "secret");
    writeFileSync(secret, "c2hvcnQ=\n");
    let err: ProxyConfigError | null = null;
    try {
      loadProxySettings({ ZT_PROXY_ROUTES: dir, ZT_OIDC_ISSUER: "http://idp.test", ZT_PROXY_COOKIE_SECRET_FILE: secret, ZT_PROXY_SESSION_IDLE_SEC: "x", ZT_OIDC_GROUP_ROLES: "nope", ZT_PROXY_TRUSTED_PROXIES: "10.0.0.0/8,banana" }, dir);
    } catch (e) {
      err = e as ProxyConfigError;
    }
    expect(err).toBeInstanceOf(ProxyConfigError);
    const text = err!.problems.join("\n");
    for (const v of ["ZT_OIDC_ISSUER", "ZT_OIDC_CLIENT_ID", "ZT_OIDC_CLIENT_SECRET_FILE", "ZT_PROXY_TLS_CERT", "ZT_PROXY_COOKIE_SECRET_FILE", "ZT_PROXY_SESSION_IDLE_SEC", "ZT_OIDC_GROUP_ROLES", "ZT_PROXY_TRUSTED_PROXIES"]) expect(text).toContain(v);
    expect(text).not.toContain("c2hvcnQ");
    expect(loadProxySettings({}, dir)).toBeNull();
  });
});
