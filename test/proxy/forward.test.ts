// forward/ and the gate: what reaches the upstream (over mTLS, with a verifiable assertion and
// nothing a client could forge), what does not (denied, refused, ambiguous paths), step-up to
// MFA, WebSockets, long streams and large bodies, and the metrics.
import { rmSync, writeFileSync } from "node:fs";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createSealer } from "../../host/proxy/authenticate/seal.js";
import { parseSecrets } from "../../host/proxy/config.js";
import { createAssertionSigner } from "../../host/proxy/forward/assertion.js";
import { ADMIN, APP, audited, CONSOLE_ID, ENGINE_ID, type ProxyHarness, proxyRequest, startProxyHarness } from "./harness.js";
import { login } from "./login-flow.js";
import type { CookieJar } from "./harness.js";

let h: ProxyHarness;
let sre: CookieJar;
let dev: CookieJar;
beforeAll(async () => {
  h = await startProxyHarness();
  sre = (await login(h, APP, "sre")).jar;
  dev = (await login(h, ADMIN, "dev")).jar;
  await login(h, APP, "dev", { jar: dev });
});
afterAll(async () => h?.dispose());

const JSON_ACCEPT = { accept: "application/json" };
const last = () => h.upstream.seen.at(-1)!;

describe("what the upstream gets", () => {
  it("mTLS with the engine's SVID, and an ES256 assertion it verifies with the published JWKS", async () => {
    const r = await proxyRequest(h, APP, "/logs/today?tail=5", { jar: sre, headers: JSON_ACCEPT });
    expect(r.status).toBe(200);
    const seen = last();
    expect(seen.peer).toBe(ENGINE_ID);
    expect(seen.path).toBe("/logs/today?tail=5");
    expect(seen.assertionError).toBeNull();
    const c = seen.claims!;
    expect(c).toMatchObject({ iss: "zt-access-proxy", aud: "127.0.0.1", sub: "sre@hanzo.test", email: "sre@hanzo.test", roles: ["sre"], amr: ["pwd"] });
    expect(c.exp! - c.iat!).toBeLessThanOrEqual(600);
    const header = decodeProtectedHeader(seen.headers["x-zt-jwt-assertion"] as string);
    expect(header.alg).toBe("ES256");
    const jwks = (await proxyRequest(h, APP, "/.zt/jwks.json")).json<{ keys: Array<{ kid: string; kty: string; d?: string }> }>();
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    expect(jwks.keys.every((k) => k.kty === "EC" && k.d === undefined)).toBe(true);
    expect(CONSOLE_ID).toContain("grafana");
  });

  it("strips every identity header a client sends, the proxy's cookies and credential; keeps the app's own", async () => {
    const forged = {
      ...JSON_ACCEPT,
      "x-zt-jwt-assertion": "forged",
      "x-zt-user": "root",
      "x-forwarded-user": "root",
      "x-forwarded-email": "root@hanzo.test",
      "x-goog-iap-jwt-assertion": "forged",
      "x-pomerium-jwt-assertion": "forged",
      "x-auth-request-user": "root",
      "remote-user": "root",
      "impersonate-user": "system:admin",
      "impersonate-group": "system:masters",
      forwarded: "for=1.2.3.4",
      "x-real-ip": "1.2.3.4",
      connection: "x-secret-hop",
      "x-secret-hop": "1",
      cookie: `app=1; ${sre.header(`${APP}:${h.port}`)}; other=2`,
      authorization: "Basic YXBwOmFwcA==",
    };
    const r = await proxyRequest(h, APP, "/logs/headers", { headers: forged });
    expect(r.status).toBe(200);
    const got = last().headers;
    for (const name of ["x-zt-user", "x-forwarded-user", "x-forwarded-email", "x-goog-iap-jwt-assertion", "x-pomerium-jwt-assertion", "x-auth-request-user", "remote-user", "impersonate-user", "impersonate-group", "forwarded", "x-real-ip", "x-secret-hop"]) {
      expect(got[name], name).toBeUndefined();
    }
    expect(got["x-zt-jwt-assertion"]).not.toBe("forged");
    expect(last().assertionError).toBeNull();
    expect(got.cookie).toBe("app=1; other=2");
    // The session came from the cookie: the app's own Authorization passes untouched (as with IAP).
    expect(got.authorization).toBe("Basic YXBwOmFwcA==");
    expect(got["x-forwarded-proto"]).toBe("https");
    expect(got["x-forwarded-host"]).toBe(`${APP}:${h.port}`);
    expect(got.host).toBe(`127.0.0.1:${h.upstream.port}`);
  });

  it("never lets the upstream set the proxy's cookie", async () => {
    const r = await proxyRequest(h, APP, "/logs/set-cookie", { jar: sre, headers: JSON_ACCEPT });
    expect(r.status).toBe(200);
    expect(r.headers["set-cookie"]).toEqual(["app=1; Path=/; Secure"]);
  });
});

describe("what never reaches the upstream", () => {
  it("a policy DENY: 403 with the reason and the decision id, audited with subject, roles and route", async () => {
    const before = h.upstream.seen.length;
    const r = await proxyRequest(h, ADMIN, "/tables", { jar: dev, headers: JSON_ACCEPT });
    expect(r.status).toBe(403);
    const err = r.json<{ error: { code: string; decision_id: string } }>().error;
    expect(err.code).toBe("default_deny");
    const rec = (await audited(h, [err.decision_id])).get(err.decision_id)!;
    expect(rec).toMatchObject({ decision: "DENY", operator: { subject: "dev@hanzo.test", roles: ["developer"], mfa: false }, target: { service: "postgres", action: "read" }, caller: "proxy:db-admin+http+remote:127.0.0.1" });
    expect(h.upstream.seen.length).toBe(before);
  });

  it("paths are decided as the upstream will read them: dot segments resolved, encoded ones refused", async () => {
    const before = h.upstream.seen.length;
    // dev may see gateway's logs, not the rest of it: /logs/../secret is /secret, a read.
    const dots = await proxyRequest(h, APP, "/logs/../secret", { jar: dev, headers: JSON_ACCEPT });
    expect(dots.status).toBe(403);
    for (const p of ["/logs/%2e%2e/secret", "/logs%2f..%2fsecret", "/logs/..%5csecret", "/logs/a%00b"]) {
      const r = await proxyRequest(h, APP, p, { jar: dev, headers: JSON_ACCEPT });
      expect(r.status, p).toBe(400);
      expect(r.json<{ error: { code: string } }>().error.code).toBe("proxy_bad_path");
    }
    expect(h.upstream.seen.length).toBe(before);
    const ok = await proxyRequest(h, APP, "/logs//a/./b", { jar: dev, headers: JSON_ACCEPT });
    expect(ok.status).toBe(200);
    expect(last().path).toBe("/logs/a/b");
  });

  it("an upstream that is down: 502, nothing else; routes reload without a restart", async () => {
    const routes = `apiVersion: zt.hanzo.ai/v1\nkind: AccessRoute\nmetadata: {name: gone}\nspec: {from: "https://${APP}", prefix: /gone, service: postgres, to: "https://127.0.0.1:1"}\n`;
    writeFileSync(`${h.routesDir}/gone.yaml`, routes);
    let r;
    // Until the new route is in (it is a read of gateway under the old routes: 403 for sre).
    do {
      await new Promise((res) => setTimeout(res, 100));
      r = await proxyRequest(h, APP, "/gone/x", { jar: sre, headers: JSON_ACCEPT });
    } while (r.status === 403);
    expect(r.status).toBe(502);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("upstream_unavailable");
    // An invalid route file is refused; the routes in force keep serving.
    writeFileSync(`${h.routesDir}/gone.yaml`, routes.replace("service: postgres", "service: [postgres]"));
    await new Promise((res) => setTimeout(res, 6000));
    expect((await proxyRequest(h, APP, "/gone/x", { jar: sre, headers: JSON_ACCEPT })).status).toBe(502);
    rmSync(`${h.routesDir}/gone.yaml`);
  });
});

describe("step-up to MFA", () => {
  it("oncall without MFA is sent back to the issuer, signs in with a second factor, then needs an incident", async () => {
    const { jar } = await login(h, APP, "oncall");
    const nav = await proxyRequest(h, APP, "/dashboards", { jar, headers: { accept: "text/html", "sec-fetch-mode": "navigate" } });
    expect(nav.status).toBe(302);
    expect(nav.headers.location).toBe(`/.zt/login?rd=${encodeURIComponent("/dashboards")}&step_up=mfa`);
    const script = await proxyRequest(h, APP, "/dashboards", { jar, headers: JSON_ACCEPT });
    expect(script.status).toBe(401);
    expect(script.json<{ error: { code: string; login_url: string } }>().error).toMatchObject({ code: "mfa_required", login_url: `/.zt/login?rd=${encodeURIComponent("/dashboards")}&step_up=mfa` });
    // The step-up sign-in asks the IdP for MFA (acr_values) and a fresh login (max_age=0).
    const stepped = await login(h, APP, "oncall", { jar, rd: "/dashboards", stepUp: true });
    expect(h.idp.logins.at(-1)).toEqual({ user: "oncall", otp: true });
    expect(stepped.callback!.headers.location).toBe("/dashboards");
    const me = await proxyRequest(h, APP, "/.zt/session", { jar, headers: JSON_ACCEPT });
    expect(me.json()).toMatchObject({ mfa: true, amr: ["pwd", "otp"] });
    const noIncident = await proxyRequest(h, APP, "/dashboards", { jar, headers: JSON_ACCEPT });
    expect(noIncident.json<{ error: { code: string } }>().error.code).toBe("condition_failed:requireIncident");
    await h.engine.state.putIncident("INC-42", { description: "proxy test" }, "test");
    const withHeader = await proxyRequest(h, APP, "/stream?n=30", { jar, headers: { accept: "text/plain", "x-zt-incident": "INC-42" } });
    expect(withHeader.status).toBe(200);
    // A six-second answer arrives whole: no timeout on long streams.
    expect(withHeader.body.split("\n").filter(Boolean)).toHaveLength(30);
    // Or an incident chosen for the session.
    const chosen = await proxyRequest(h, APP, "/.zt/incident", { method: "POST", jar, body: "incident=INC-42", headers: { "content-type": "application/x-www-form-urlencoded", origin: h.origin(APP) } });
    expect(chosen.status).toBe(200);
    const big = "y".repeat(2 * 1024 * 1024);
    const put = await proxyRequest(h, APP, "/upload", { method: "PUT", jar, body: big, headers: { ...JSON_ACCEPT, "content-type": "text/plain" } });
    expect(put.status).toBe(200);
    expect(last().body.length).toBe(big.length);
    expect(last().claims).toMatchObject({ sub: "oncall@hanzo.test", amr: ["pwd", "otp"] });
  });

  it("an operator with no second factor enrolled is told so, not looped", async () => {
    const r = await login(h, APP, "oncall-nomfa", { stepUp: true, rd: "/dashboards" });
    expect(h.idp.logins.at(-1)).toEqual({ user: "oncall-nomfa", otp: false });
    expect(r.callback!.status).toBe(403);
    expect(r.callback!.body).toContain("second factor");
  });

  it("roles from groups (team-sre -> sre), MFA at every sign-in", async () => {
    const { jar } = await login(h, APP, "lead");
    const me = await proxyRequest(h, APP, "/.zt/session", { jar, headers: JSON_ACCEPT });
    expect(me.json()).toMatchObject({ subject: "lead@hanzo.test", roles: ["sre"], mfa: true });
  });
});

describe("WebSockets", () => {
  const open = (headers: Record<string, string>): Promise<{ ws: WebSocket; first: string } | { status: number }> =>
    new Promise((resolve, reject) => {
      // ws hands these to https.request: the TLS name is the route host, the address 127.0.0.1.
      const options = { servername: APP, headers: { host: `${APP}:${h.port}`, ...headers }, ca: h.web.pem } as WebSocket.ClientOptions;
      const ws = new WebSocket(`wss://127.0.0.1:${h.port}/logs/ws`, options);
      ws.once("message", (m) => resolve({ ws, first: String(m) }));
      ws.once("unexpected-response", (_req, res) => resolve({ status: res.statusCode ?? 0 }));
      ws.once("error", reject);
    });

  it("pass through with the session and the assertion; refused without one", async () => {
    const ok = await open({ cookie: sre.header(`${APP}:${h.port}`)! });
    if (!("ws" in ok)) throw new Error(`status ${ok.status}`);
    expect(JSON.parse(ok.first)).toEqual({ hello: "sre@hanzo.test" });
    const echo = new Promise<string>((r) => ok.ws.once("message", (m) => r(String(m))));
    ok.ws.send("ping");
    expect(await echo).toBe("echo:ping");
    ok.ws.close();
    expect(await open({})).toEqual({ status: 401 });
  });
});

describe("assertion keys", () => {
  it("rotate once across replicas; the JWKS keeps the previous key, so assertions signed before still verify", async () => {
    const problems: string[] = [];
    const atRest = createSealer(parseSecrets(readFileSync(join(h.engine.dataDir, "proxy-secret"), "utf8"), "secret", problems), "at-rest");
    const opts = { issuer: "zt-access-proxy", ttlSec: 300, rotationSec: 3600, reloadMs: 3_600_000 };
    const a = await createAssertionSigner(h.sql, atRest, opts);
    const b = await createAssertionSigner(h.sql, atRest, opts);
    try {
      const who = { subject: "r@hanzo.test", email: null, roles: ["sre"], amr: [] };
      const before = await a.assertion(who, "upstream.test");
      const k1 = decodeProtectedHeader(before).kid;
      expect(decodeProtectedHeader(await b.assertion(who, "other.test")).kid).toBe(k1);
      await h.sql`UPDATE zt_proxy.signing_keys SET created_at = created_at - interval '2 hours'`;
      // Both replicas try; exactly one key is added.
      const added = await Promise.all([a.rotate(), b.rotate()]);
      expect(added.filter(Boolean)).toHaveLength(1);
      await a.rotate();
      const after = await a.assertion(who, "upstream.test");
      const k2 = decodeProtectedHeader(after).kid;
      expect(k2).not.toBe(k1);
      const jwks = await b.jwks();
      expect(jwks.keys.map((k) => k.kid)).toEqual([k2, k1]);
      for (const t of [before, after]) await expect(jwtVerify(t, createLocalJWKSet(jwks), { issuer: "zt-access-proxy", audience: "upstream.test" })).resolves.toBeTruthy();
      // One more rotation and the oldest key is no longer published.
      await h.sql`UPDATE zt_proxy.signing_keys SET created_at = created_at - interval '2 hours'`;
      await b.rotate();
      await a.rotate();
      const later = await a.jwks();
      expect(later.keys.map((k) => k.kid)).not.toContain(k1);
      expect(later.keys.map((k) => k.kid)).toContain(k2);
      await expect(jwtVerify(before, createLocalJWKSet(later))).rejects.toThrow();
    } finally {
      a.close();
      b.close();
    }
  });
});

describe("metrics", () => {
  it("zt_proxy_requests_total by route and outcome, sessions, on the health port's /metrics", async () => {
    const text = await (await fetch(`${h.engine.healthUrl}/metrics`)).text();
    expect(text).toMatch(/zt_proxy_requests_total\{route="console",outcome="allowed"\} [1-9]/);
    expect(text).toMatch(/zt_proxy_requests_total\{route="db-admin",outcome="denied"\} [1-9]/);
    expect(text).toMatch(/zt_proxy_requests_total\{route="\(no-route\)",outcome="refused"\} [1-9]/);
    expect(text).toMatch(/zt_proxy_sessions\{kind="browser"\}/);
    expect(text).toMatch(/zt_decisions_total\{decision="deny",source="operator",dest="postgres"\} [1-9]/);
  });
});
