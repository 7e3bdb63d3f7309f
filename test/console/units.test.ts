// The console's pure parts: sessions and CSRF tokens, the YAML highlighter, CSV cells, the
// `next` redirect rule, time windows and the graph's namespace filter.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Graph } from "../../host/audit/graph.js";
import { csvCell } from "../../host/console/audit-export.js";
import { filterNamespace } from "../../host/console/pages/graph.js";
import { consoleUrl, safeNext } from "../../host/console/paths.js";
import { type Session, SESSION_SECONDS, SessionKeys } from "../../host/console/session.js";
import { sessionFromAssertion } from "../../host/console/proxy-session.js";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { normaliseTime, parseWindow } from "../../host/console/time-window.js";
import { highlightYaml } from "../../host/console/yaml-tokens.js";
import { peersFromExposition } from "../../host/console/mesh-peers.js";
import { MeshCard } from "../../host/console/pages/overview.js";
import { createMeshMetrics } from "../../host/mesh/metrics.js";

const SECRET = "test-admin-token-0123456789abcdef";

describe("sessions", () => {
  it("reads back what it issued, and nothing else", () => {
    const keys = new SessionKeys(SECRET);
    const { cookie, session } = keys.issue("admin-token", "admin", 1000);
    expect(keys.read(cookie, 1001)).toEqual(session);
    expect(session.exp).toBe(1000 + SESSION_SECONDS);
    // Expired, forged, re-signed with another secret, truncated, or carrying the token in clear.
    expect(keys.read(cookie, 1000 + SESSION_SECONDS)).toBeNull();
    const [payload, mac] = cookie.split(".") as [string, string];
    const forged = Buffer.from(JSON.stringify({ ...session, role: "admin", sub: "mallory" })).toString("base64url");
    expect(keys.read(`${forged}.${mac}`, 1001)).toBeNull();
    expect(new SessionKeys("another-admin-token-0123456789").read(cookie, 1001)).toBeNull();
    expect(keys.read(payload, 1001)).toBeNull();
    expect(keys.read(undefined, 1001)).toBeNull();
    expect(cookie).not.toContain(SECRET);
    expect(Buffer.from(payload, "base64url").toString()).not.toContain(SECRET);
  });

  it("a revoked session is refused on this replica", () => {
    const keys = new SessionKeys(SECRET);
    const { cookie, session } = keys.issue("admin-token", "admin");
    keys.revoke(session);
    expect(keys.read(cookie)).toBeNull();
  });

  it("binds the CSRF token to the session", () => {
    const keys = new SessionKeys(SECRET);
    const a = keys.issue("admin-token", "admin").session;
    const b = keys.issue("admin-token", "admin").session;
    expect(keys.checkCsrf(a, keys.csrfToken(a))).toBe(true);
    expect(keys.checkCsrf(a, keys.csrfToken(b))).toBe(false);
    expect(keys.checkCsrf(a, "")).toBe(false);
    expect(keys.checkCsrf(a, null)).toBe(false);
    const login = keys.loginNonce();
    expect(keys.checkLogin(login.nonce, login.token)).toBe(true);
    expect(keys.checkLogin(keys.loginNonce().nonce, login.token)).toBe(false);
    expect(keys.checkLogin(undefined, login.token)).toBe(false);
  });
});

describe("YAML highlighting", () => {
  it("classifies keys, strings, numbers, booleans, comments and indicators", () => {
    const lines = highlightYaml('a: 1 # n\nb: "x"\nc: [true, y]\n---\n');
    expect(lines).toEqual([
      [
        { cls: "key", text: "a" },
        { cls: "punct", text: ":" },
        { cls: null, text: " " },
        { cls: "num", text: "1" },
        { cls: null, text: " " },
        { cls: "comment", text: "# n" },
      ],
      [
        { cls: "key", text: "b" },
        { cls: "punct", text: ":" },
        { cls: null, text: " " },
        { cls: "str", text: '"x"' },
      ],
      [
        { cls: "key", text: "c" },
        { cls: "punct", text: ":" },
        { cls: null, text: " " },
        { cls: "punct", text: "[" },
        { cls: "bool", text: "true" },
        { cls: "punct", text: "," },
        { cls: null, text: " " },
        { cls: "str", text: "y" },
        { cls: "punct", text: "]" },
      ],
      [{ cls: "doc", text: "---" }],
    ]);
  });

  it("loses and adds nothing: the pieces put together are the source, whatever it is", () => {
    const yamlish = fc.stringMatching(/^[a-z0-9 :\-#"'[\]{},|>&*!?\n\t.]{0,200}$/);
    fc.assert(
      fc.property(fc.oneof(yamlish, fc.string({ maxLength: 200 })), (src) => {
        const text = highlightYaml(src)
          .map((l) => l.map((p) => p.text).join(""))
          .join("\n");
        expect(text + (src.endsWith("\n") ? "\n" : "")).toBe(src);
      }),
      { numRuns: 500 },
    );
  });
});

describe("CSV cells", () => {
  it("quotes per RFC 4180 and defuses formulas", () => {
    expect(csvCell(null)).toBe("");
    expect(csvCell(5432)).toBe("5432");
    expect(csvCell(false)).toBe("false");
    expect(csvCell("plain")).toBe("plain");
    expect(csvCell('say "hi", twice')).toBe('"say ""hi"", twice"');
    expect(csvCell("line\nbreak")).toBe('"line\nbreak"');
    expect(csvCell("=HYPERLINK(1)")).toBe("'=HYPERLINK(1)");
    expect(csvCell("+1")).toBe("'+1");
    expect(csvCell("@x,y")).toBe(`"'@x,y"`);
  });
});

describe("links", () => {
  it("follows `next` only to console pages", () => {
    expect(safeNext("/console/audit?x=1")).toBe("/console/audit?x=1");
    expect(safeNext("/console")).toBe("/console");
    for (const bad of ["https://evil.example/", "//evil.example/console/", "/consolex", "/v1/policies", "/console/\\evil", null, undefined]) {
      expect(safeNext(bad)).toBe("/console");
    }
  });

  it("builds console URLs with the non-empty parameters", () => {
    expect(consoleUrl("/")).toBe("/console");
    expect(consoleUrl("/audit", { source: "spiffe://a/b", port: 5, x: "", y: null })).toBe("/console/audit?source=spiffe%3A%2F%2Fa%2Fb&port=5");
  });
});

describe("time windows", () => {
  const now = new Date("2026-02-23T12:00:00.000Z");
  it("reads presets, explicit times and datetime-local values", () => {
    const w = parseWindow({ window: "1h" }, "24h", now);
    expect(w).toEqual({ ok: true, value: { since: new Date("2026-02-23T11:00:00.000Z"), until: now, preset: "1h" } });
    expect(parseWindow({}, "24h", now)).toMatchObject({ ok: true, value: { preset: "24h" } });
    expect(parseWindow({ since: "2026-02-23T10:00", until: "2026-02-23T11:00:30" }, "24h", now)).toEqual({
      ok: true,
      value: { since: new Date("2026-02-23T10:00:00Z"), until: new Date("2026-02-23T11:00:30Z"), preset: "" },
    });
    expect(normaliseTime(" 2026-02-23T10:00 ")).toBe("2026-02-23T10:00:00Z");
  });

  it("says what is wrong", () => {
    expect(parseWindow({ window: "2w" }, "24h", now)).toMatchObject({ ok: false, error: expect.stringContaining('unknown window "2w"') });
    expect(parseWindow({ since: "yesterday" }, "24h", now)).toMatchObject({ ok: false, error: expect.stringContaining("since must be an RFC 3339") });
    expect(parseWindow({ since: "2026-02-23T11:00:00Z", until: "2026-02-23T10:00:00Z" }, "24h", now)).toEqual({ ok: false, error: "since must be before until" });
  });
});

describe("the graph's namespace filter", () => {
  it("keeps the edges with an end in the namespace, and their nodes", () => {
    const node = (id: string, namespace: string | null) => ({ id, trust_domain: "t", cluster: "c", namespace, service_account: "s" });
    const edge = (source: string, destination: string) => ({ source, destination, port: 1, allow: 1, deny: 0, observed_deny: 0, first_seen: "", last_seen: "" });
    const g: Graph = {
      since: "",
      until: "",
      nodes: [node("a", "x"), node("b", "y"), node("c", "y"), node("d", null)],
      edges: [edge("a", "b"), edge("b", "c"), edge("d", "a")],
      limit: 1000,
      total_edges: 3,
      truncated: false,
    };
    expect(filterNamespace(g, "")).toBe(g);
    const x = filterNamespace(g, "x");
    expect(x.edges.map((e) => `${e.source}>${e.destination}`)).toEqual(["a>b", "d>a"]);
    expect(x.nodes.map((n) => n.id)).toEqual(["a", "b", "d"]);
    expect(filterNamespace(g, "z").nodes).toEqual([]);
  });
});

describe("WireGuard peers on the overview", () => {
  it("reads zt_wireguard_peer_up from the agent's exposition, and nothing else", async () => {
    const metrics = createMeshMetrics({ processMetrics: false });
    metrics.update({
      interfaceUp: true,
      peers: [
        { cluster: "zoo-k8s", up: false, handshakeAgeSeconds: Infinity, rxBytes: 0, txBytes: 0 },
        { cluster: "lux-k8s", up: true, handshakeAgeSeconds: 3, rxBytes: 10, txBytes: 20 },
      ],
      keyAges: [{ cluster: "hanzo-k8s", seconds: 100 }],
    });
    expect(peersFromExposition(await metrics.registry.metrics())).toEqual([
      { cluster: "lux-k8s", up: true },
      { cluster: "zoo-k8s", up: false },
    ]);
    expect(peersFromExposition("# HELP other x\n# TYPE other gauge\nother 1\n")).toEqual([]);
  });

  it("says plainly when no agent is configured, rather than showing a number", () => {
    const html = String(MeshCard({ agents: null }));
    expect(html).toContain("Not configured");
    expect(html).toContain("ZT_CONSOLE_MESH_METRICS");
    expect(html).not.toMatch(/\d+ of \d+ up/);
  });
});

describe("sign-in through the access proxy", () => {
  const keysFor = async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
    return { privateKey, keys: { issuer: "zt-access-proxy", jwks: async () => ({ keys: [jwk] }) } };
  };
  const sign = (key: CryptoKey, claims: Record<string, unknown>, o: { aud?: string; iss?: string; exp?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(o.iss ?? "zt-access-proxy")
      .setAudience(o.aud ?? "zt-engine.zt-system")
      .setSubject("alice@hanzo.ai")
      .setIssuedAt()
      .setExpirationTime(o.exp ?? "5m")
      .sign(key);
  const keys = new SessionKeys(SECRET);

  it("makes the assertion's operator the session: zt-admin writes, other roles read", async () => {
    const { privateKey, keys: k } = await keysFor();
    const p = { keys: k, audience: "zt-engine.zt-system" };
    const admin = await sessionFromAssertion(p, await sign(privateKey, { email: "alice@hanzo.ai", roles: ["sre", "zt-admin"] }), (s) => keys.proxySid(s));
    expect(admin).toMatchObject({ ok: true, session: { sub: "alice@hanzo.ai", role: "admin", via: "proxy", sid: keys.proxySid("alice@hanzo.ai") } });
    const reader = await sessionFromAssertion(p, await sign(privateKey, { roles: ["sre"] }), (s) => keys.proxySid(s));
    expect(reader).toMatchObject({ ok: true, session: { role: "reader" } });
    // The CSRF token of an operator is the same on every request (and another operator's differs).
    expect(keys.csrfToken((admin as { session: Session }).session)).toBe(keys.csrfToken((reader as { session: Session }).session));
    expect(keys.proxySid("bob@hanzo.ai")).not.toBe(keys.proxySid("alice@hanzo.ai"));
  });

  it("refuses an assertion for another audience or issuer, expired, or signed by another key", async () => {
    const { privateKey, keys: k } = await keysFor();
    const other = await keysFor();
    const p = { keys: k, audience: "zt-engine.zt-system" };
    const check = async (token: string) => sessionFromAssertion(p, token, (s) => keys.proxySid(s));
    expect(await check(await sign(privateKey, {}, { aud: "grafana.internal" }))).toMatchObject({ ok: false, reason: expect.stringContaining("ERR_JWT_CLAIM_VALIDATION_FAILED") });
    expect(await check(await sign(privateKey, {}, { iss: "someone-else" }))).toMatchObject({ ok: false });
    expect(await check(await sign(privateKey, {}, { exp: "-1m" }))).toMatchObject({ ok: false, reason: expect.stringContaining("ERR_JWT_EXPIRED") });
    expect(await check(await sign(other.privateKey, {}))).toMatchObject({ ok: false });
    expect(await check("not-a-jwt")).toMatchObject({ ok: false });
  });
});
