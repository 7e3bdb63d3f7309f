// Agent JWT verification against a real JWKS server on loopback.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { Registry } from "prom-client";
import { SignJWT, UnsecuredJWT } from "jose";
import { createJwtVerifier, tokenScopes, type JwtResult, type JwtVerifierOptions } from "../../host/identity/jwt.js";
import { registerIdentityMetrics, type IdentityMetrics } from "../../host/identity/metrics.js";
import { startJwksServer, signingKey, mint, mintCritical, signRaw, ISSUER, AUDIENCE, type JwksServer, type SigningKey } from "./jwks-server.js";

let jwks: JwksServer;
let k1: SigningKey;
let rsa: SigningKey;
let registry: Registry;
let metrics: IdentityMetrics;

beforeAll(async () => {
  k1 = await signingKey("k1");
  rsa = await signingKey("r1", "RS256");
  jwks = await startJwksServer([k1, rsa]);
  registry = new Registry();
  metrics = registerIdentityMetrics(registry);
});

afterAll(async () => {
  await jwks?.close();
});

function verifier(over: Partial<JwtVerifierOptions> = {}) {
  return createJwtVerifier({
    jwksUrl: jwks.url,
    issuer: ISSUER,
    audience: [AUDIENCE],
    maxLifetimeSec: 900,
    cacheTtlMs: 3600_000,
    cooldownMs: 30_000,
    clockToleranceSec: 5,
    metrics,
    ...over,
  });
}

function expectReject(r: JwtResult, reason: string, fragment?: string): void {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.reason).toBe(reason);
  if (fragment) expect(r.detail).toContain(fragment);
}

describe("agent JWTs: accepted", () => {
  it("a 15-minute ES256 token from the issuer, for the audience, with its scopes", async () => {
    const r = await verifier().verify(await mint(k1, { scope: "llm:invoke models:read" }));
    expect(r).toMatchObject({ ok: true, subject: "agent-7", issuer: ISSUER, scopes: ["llm:invoke", "models:read"] });
  });

  it("an RS256 token, with scopes in scp and scopes arrays, and an audience list", async () => {
    const token = await mint(rsa, { aud: ["other", AUDIENCE], extra: { scp: ["a:b"], scopes: ["c:d", "a:b"] } });
    const r = await verifier().verify(token);
    expect(r).toMatchObject({ ok: true, scopes: ["a:b", "c:d"] });
  });

  it("a token without iat whose remaining life is within the maximum", async () => {
    expect((await verifier().verify(await mint(k1, { iatOffset: null, expOffset: 600 }))).ok).toBe(true);
  });

  it("caches the JWKS: many verifications, one fetch", async () => {
    const v = verifier();
    const before = jwks.hits();
    for (let i = 0; i < 20; i++) expect((await v.verify(await mint(k1))).ok).toBe(true);
    expect(jwks.hits() - before).toBe(1);
  });
});

describe("agent JWTs: rejected, each for its precise reason", () => {
  it("expired", async () => {
    expectReject(await verifier().verify(await mint(k1, { iatOffset: -1000, expOffset: -100 })), "token_expired", '"exp"');
  });

  it("too long-lived (iat to exp over 15 minutes)", async () => {
    expectReject(await verifier().verify(await mint(k1, { expOffset: 3600 })), "lifetime_exceeds_max", "lives 3600 s (iat to exp); at most 900 s");
  });

  it("too long-lived without iat (remaining life over the maximum)", async () => {
    expectReject(await verifier().verify(await mint(k1, { iatOffset: null, expOffset: 7200 })), "lifetime_exceeds_max", "at most 900 s");
  });

  it("a shorter configured maximum applies", async () => {
    expectReject(await verifier({ maxLifetimeSec: 300 }).verify(await mint(k1, { expOffset: 600 })), "lifetime_exceeds_max", "at most 300 s");
  });

  it("without exp", async () => {
    expectReject(await verifier().verify(await mint(k1, { expOffset: null })), "missing_exp");
  });

  it("without sub", async () => {
    expectReject(await verifier().verify(await mint(k1, { sub: null })), "missing_subject");
  });

  it("with a sub the audit trail could not store (NUL, lone surrogate, over 1,024 characters)", async () => {
    for (const sub of ["agent\u0000x", "agent-\ud800", "a".repeat(1025)]) {
      expectReject(await verifier().verify(await mint(k1, { sub })), "invalid_claim");
    }
  });

  it("wrongly signed: a known kid, another key", async () => {
    const forger = await signingKey("k1");
    expectReject(await verifier().verify(await mint(forger)), "bad_signature");
  });

  it("from another issuer", async () => {
    expectReject(await verifier().verify(await mint(k1, { iss: "https://evil.example" })), "issuer_mismatch", "evil.example");
  });

  it("for another audience", async () => {
    expectReject(await verifier().verify(await mint(k1, { aud: "billing.hanzo.ai" })), "audience_mismatch", "billing.hanzo.ai");
  });

  it("not yet valid (nbf in the future)", async () => {
    expectReject(await verifier().verify(await mint(k1, { nbfOffset: 300 })), "token_not_yet_valid");
  });

  it("issued in the future", async () => {
    expectReject(await verifier().verify(await mint(k1, { iatOffset: 300, expOffset: 900 })), "iat_in_future");
  });

  it("HS256 and alg=none are never accepted", async () => {
    const hs = await new SignJWT({ sub: "a", iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: "HS256", kid: "k1" })
      .sign(new TextEncoder().encode("a-shared-secret-of-32-bytes-long!"));
    expectReject(await verifier().verify(hs), "algorithm_not_allowed");
    const none = new UnsecuredJWT({ sub: "a", iss: ISSUER, aud: AUDIENCE }).setExpirationTime("5m").encode();
    expectReject(await verifier().verify(none), "algorithm_not_allowed", '"alg"');
  });

  it("a crit header is refused with its own reason, whatever else the token holds", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: "agent-7", iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300 };
    // RFC 7515 4.1.11: an extension the recipient does not understand must not be ignored.
    expectReject(await verifier().verify(mintCritical(k1, "exp-ext")), "unsupported_critical_header", "exp-ext");
    // RFC 7797's unencoded payload is an extension too.
    expectReject(await verifier().verify(signRaw(k1, { alg: "ES256", kid: "k1", crit: ["b64"], b64: true }, claims)), "unsupported_critical_header", "b64");
    // The same token without crit verifies: the reason is the header, not the signature.
    expect((await verifier().verify(signRaw(k1, { alg: "ES256", kid: "k1" }, claims))).ok).toBe(true);
  });

  it("malformed and oversized tokens", async () => {
    expectReject(await verifier().verify("abc"), "malformed_token", "compact JWS");
    expectReject(await verifier().verify("a.b.c"), "malformed_token", "Protected Header is invalid");
    expectReject(await verifier().verify("x".repeat(20_000)), "malformed_token", "longer than");
    expectReject(await verifier().verify(""), "malformed_token");
  });
});

describe("JWKS cache and refetch", () => {
  it("an unknown kid refetches once, then is rejected; more unknown kids within the cooldown fetch nothing", async () => {
    const v = verifier();
    expect((await v.verify(await mint(k1))).ok).toBe(true);
    const stranger = await signingKey("k-unknown");
    const before = jwks.hits();
    expectReject(await v.verify(await mint(stranger)), "unknown_kid");
    const afterFirst = jwks.hits();
    for (let i = 0; i < 10; i++) expectReject(await v.verify(await mint(stranger, { kid: `nope-${i}` })), "unknown_kid");
    // At most one refetch for the whole burst: the cooldown bounds it.
    expect(afterFirst - before).toBeLessThanOrEqual(1);
    expect(jwks.hits()).toBe(afterFirst);
  });

  it("a rotated-in key is found by refetching on its unknown kid", async () => {
    const v = verifier({ cooldownMs: 1 });
    expect((await v.verify(await mint(k1))).ok).toBe(true);
    const k2 = await signingKey("k2");
    jwks.setKeys([k1, rsa, k2]);
    try {
      await new Promise((r) => setTimeout(r, 5));
      const before = jwks.hits();
      expect(await v.verify(await mint(k2, { scope: "llm:invoke" }))).toMatchObject({ ok: true, scopes: ["llm:invoke"] });
      expect(jwks.hits() - before).toBe(1);
    } finally {
      jwks.setKeys([k1, rsa]);
    }
  });

  it("refetches when the cache is older than its TTL", async () => {
    const v = verifier({ cacheTtlMs: 1 });
    expect((await v.verify(await mint(k1))).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 5));
    const before = jwks.hits();
    expect((await v.verify(await mint(k1))).ok).toBe(true);
    expect(jwks.hits() - before).toBe(1);
  });

  it("fails closed when the JWKS endpoint errors, hangs or is gone", async () => {
    jwks.setMode("error");
    try {
      expectReject(await verifier().verify(await mint(k1)), "jwks_unavailable", "could not be fetched");
      jwks.setMode("hang");
      expectReject(await verifier({ fetchTimeoutMs: 50 }).verify(await mint(k1)), "jwks_unavailable", "timed out");
    } finally {
      jwks.setMode("ok");
    }
    const gone = await startJwksServer([k1]);
    const url = gone.url;
    await gone.close();
    // The caller's answer names no address; the log does, once per distinct failure and minute.
    const logs: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const v = createJwtVerifier({ jwksUrl: url, issuer: ISSUER, audience: [AUDIENCE], maxLifetimeSec: 900, cacheTtlMs: 3600_000, log: (_l, msg, fields) => void logs.push({ msg, fields }) });
    for (let i = 0; i < 3; i++) {
      const r = await v.verify(await mint(k1));
      expectReject(r, "jwks_unavailable", "the issuer's JWKS could not be fetched");
      expect(JSON.stringify(r)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|:\d{4,5}/);
    }
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ msg: "agent JWT: the JWKS could not be fetched", fields: { jwks_url: url.href } });
    expect(String(logs[0]!.fields!["error"])).toContain("ECONNREFUSED");
  });

  it("counts verifications by result", async () => {
    const v = verifier();
    await v.verify(await mint(k1));
    await v.verify(await mint(k1, { expOffset: 3600 }));
    const m = await registry.getSingleMetric("zt_jwt_verifications_total")!.get();
    const by = new Map(m.values.map((x) => [x.labels["result"], x.value]));
    expect(by.get("ok")).toBeGreaterThan(0);
    expect(by.get("lifetime_exceeds_max")).toBeGreaterThan(0);
    expect(by.get("token_expired")).toBeGreaterThan(0);
  });
});

describe("tokenScopes", () => {
  it("reads scope, scp and scopes, ignoring non-strings and blanks", () => {
    expect(tokenScopes({ scope: "a  b", scp: "c", scopes: ["d", 3, ""] as unknown as string[] })).toEqual(["a", "b", "c", "d"]);
    expect(tokenScopes({})).toEqual([]);
  });
});
