import { describe, it, expect } from "vitest";
import { parseIdentityConfig, IdentityConfigError } from "../../host/identity/config.js";

const GW = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";
const OP = "spiffe://hanzo.ai/hanzo-k8s/zt/operator-proxy";

function problems(env: Record<string, string>): readonly string[] {
  try {
    parseIdentityConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(IdentityConfigError);
    return (e as IdentityConfigError).problems;
  }
  throw new Error("expected an IdentityConfigError");
}

describe("parseIdentityConfig", () => {
  it("defaults to plaintext without identity settings", () => {
    const c = parseIdentityConfig({});
    expect(c.tls).toEqual({ mode: "plaintext" });
    expect(c.jwt).toBeNull();
    expect(c.trustedEvaluators.size).toBe(0);
  });

  it("reads the SPIRE socket (path or unix: URI) and the SPIFFE ID lists", () => {
    const c = parseIdentityConfig({ ZT_SPIRE_SOCKET: "unix:///run/spire/sockets/agent.sock", ZT_TRUSTED_EVALUATORS: `${GW}, ${OP}`, ZT_ADMIN_SPIFFE_IDS: OP });
    expect(c.tls).toEqual({ mode: "spire", socketPath: "/run/spire/sockets/agent.sock" });
    expect([...c.trustedEvaluators]).toEqual([GW, OP]);
    expect([...c.adminSpiffeIds]).toEqual([OP]);
    expect(parseIdentityConfig({ ZT_SPIRE_SOCKET: "/run/a.sock" }).tls).toEqual({ mode: "spire", socketPath: "/run/a.sock" });
  });

  it("reads certificate files with a reload interval", () => {
    const c = parseIdentityConfig({ ZT_TLS_CERT: "/c.pem", ZT_TLS_KEY: "/k.pem", ZT_TLS_BUNDLE: "/b.pem", ZT_TLS_RELOAD_INTERVAL_SEC: "30" });
    expect(c.tls).toEqual({ mode: "files", certPath: "/c.pem", keyPath: "/k.pem", bundlePath: "/b.pem", reloadIntervalMs: 30_000 });
  });

  it("reads the JWT settings with the seed's defaults", () => {
    const c = parseIdentityConfig({ ZT_JWKS_URL: "https://hanzo.id/.well-known/jwks", ZT_JWT_ISSUER: "https://hanzo.id", ZT_JWT_AUDIENCE: "zt.hanzo.ai" });
    expect(c.jwt).toMatchObject({ issuer: "https://hanzo.id", audience: ["zt.hanzo.ai"], maxLifetimeSec: 900, cacheTtlMs: 3600_000, cooldownMs: 30_000, clockToleranceSec: 5 });
    expect(c.jwt!.jwksUrl.href).toBe("https://hanzo.id/.well-known/jwks");
    expect(c.jwt!.algorithms).not.toContain("HS256");
  });

  it("lists every problem at once, each naming its variable", () => {
    const p = problems({
      ZT_SPIRE_SOCKET: "relative.sock",
      ZT_TRUSTED_EVALUATORS: `${GW},spiffe://Hanzo.ai/x,spiffe://hanzo.ai`,
      ZT_JWKS_URL: "http://iam.hanzo.svc/jwks",
      ZT_JWT_MAX_LIFETIME_SEC: "-5",
      ZT_JWT_ALGORITHMS: "ES256,HS256",
    });
    expect(p).toEqual([
      'ZT_SPIRE_SOCKET: Workload API socket "relative.sock" must be an absolute path (or unix:///absolute/path)',
      'ZT_TRUSTED_EVALUATORS[1] "spiffe://Hanzo.ai/x": trust domain must be lowercase (found "H")',
      'ZT_TRUSTED_EVALUATORS[2] "spiffe://hanzo.ai": a caller\'s SPIFFE ID has a path (a bare trust domain identifies no workload)',
      'ZT_JWKS_URL "http://iam.hanzo.svc/jwks": must be https (plain http is accepted for loopback hosts only)',
      "ZT_JWT_ISSUER is required with ZT_JWKS_URL (tokens from any other issuer are rejected)",
      "ZT_JWT_AUDIENCE is required with ZT_JWKS_URL (tokens minted for other services are rejected)",
      expect.stringContaining('ZT_JWT_ALGORITHMS: "HS256" is not an accepted asymmetric JWS algorithm'),
      'ZT_JWT_MAX_LIFETIME_SEC "-5": must be a positive integer',
    ]);
  });

  it("refuses half-configured or conflicting identity sources", () => {
    expect(problems({ ZT_TLS_CERT: "/c.pem" })).toEqual(["certificate files need ZT_TLS_CERT, ZT_TLS_KEY and ZT_TLS_BUNDLE together; missing: ZT_TLS_KEY, ZT_TLS_BUNDLE"]);
    expect(problems({ ZT_SPIRE_SOCKET: "/s", ZT_TLS_CERT: "/c", ZT_TLS_KEY: "/k", ZT_TLS_BUNDLE: "/b" })[0]).toContain("choose one identity source");
    expect(problems({ ZT_ADMIN_SPIFFE_IDS: OP })[0]).toContain("need mTLS");
    expect(problems({ ZT_JWT_ISSUER: "x" })[0]).toContain("ZT_JWKS_URL is not");
  });

  it("reads the reader trust domains and what /metrics needs, refusing anything else", () => {
    const d = parseIdentityConfig({ ZT_SPIRE_SOCKET: "/s" });
    expect(d).toMatchObject({ readerTrustDomains: null, metricsAccess: "reader" });
    const c = parseIdentityConfig({ ZT_SPIRE_SOCKET: "/s", ZT_READER_TRUST_DOMAINS: "hanzo.ai, partner.org", ZT_METRICS_ACCESS: "svid" });
    expect([...c.readerTrustDomains!]).toEqual(["hanzo.ai", "partner.org"]);
    expect(c.metricsAccess).toBe("svid");
    expect(problems({ ZT_SPIRE_SOCKET: "/s", ZT_READER_TRUST_DOMAINS: "hanzo.ai,spiffe://partner.org,Evil.org", ZT_METRICS_ACCESS: "everyone" })).toEqual([
      'ZT_READER_TRUST_DOMAINS[1] "spiffe://partner.org": not a trust domain name (lowercase letters, digits, ".", "-", "_"; no scheme, no path)',
      'ZT_READER_TRUST_DOMAINS[2] "Evil.org": not a trust domain name (lowercase letters, digits, ".", "-", "_"; no scheme, no path)',
      'ZT_METRICS_ACCESS "everyone": must be one of svid, reader, admin (the health port serves /metrics without TLS)',
    ]);
  });

  it("accepts plain http JWKS on loopback (local IAM, tests)", () => {
    const c = parseIdentityConfig({ ZT_JWKS_URL: "http://127.0.0.1:9000/jwks", ZT_JWT_ISSUER: "i", ZT_JWT_AUDIENCE: "a,b" });
    expect(c.jwt!.audience).toEqual(["a", "b"]);
  });
});
