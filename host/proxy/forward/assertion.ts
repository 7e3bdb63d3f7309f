// forward/: the identity the upstream gets. `X-Zt-Jwt-Assertion` is an ES256 JWT with `kid`
// (iss, aud = the upstream's host, sub, email, roles, amr, iat, exp <= 10 min), like IAP's
// x-goog-iap-jwt-assertion and Pomerium's X-Pomerium-Jwt-Assertion. Keys live in PostgreSQL so
// every replica signs with the same newest key and publishes the same JWKS: the newest two keys,
// so an upstream holding the previous key keeps verifying across a rotation.
import { createHash } from "node:crypto";
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import type { Sql } from "postgres";
import type { Sealer } from "../authenticate/seal.js";

export const ASSERTION_HEADER = "x-zt-jwt-assertion";

export interface AssertionSubject {
  readonly subject: string;
  readonly email: string | null;
  readonly roles: readonly string[];
  readonly amr: readonly string[];
}

interface SigningKey {
  readonly kid: string;
  readonly key: CryptoKey;
  readonly publicJwk: JWK;
  readonly createdAt: number;
}

export interface AssertionSigner {
  /** The assertion for `who` at the upstream `audience`; reused while most of its lifetime is left. */
  assertion(who: AssertionSubject, audience: string, nowMs?: number): Promise<string>;
  /** `{"keys": [...]}`: the current key and the previous one. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** Adds a new key when the newest is older than the rotation period (any replica; once). */
  rotate(nowMs?: number): Promise<boolean>;
  close(): void;
}

export interface AssertionOptions {
  readonly issuer: string;
  readonly ttlSec: number;
  readonly rotationSec: number;
  /** How often a replica re-reads the key table (a key another replica added). */
  readonly reloadMs?: number;
}

const CACHE_MAX = 10_000;

async function newKey(): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  // RFC 7638 thumbprint-style kid: stable, and says nothing but "this key".
  const kid = createHash("sha256").update(JSON.stringify({ crv: publicJwk.crv, kty: publicJwk.kty, x: publicJwk.x, y: publicJwk.y })).digest("base64url").slice(0, 16);
  return { kid, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: "ES256" }, publicJwk: { ...publicJwk, kid, alg: "ES256", use: "sig" } };
}

export async function createAssertionSigner(sql: Sql, atRest: Sealer, opts: AssertionOptions): Promise<AssertionSigner> {
  let keys: SigningKey[] = [];
  const cache = new Map<string, { jwt: string; exp: number; kid: string }>();

  const load = async (): Promise<void> => {
    const rows = await sql<{ kid: string; private_sealed: string; public_jwk: JWK | string; created_at: Date }[]>`
      SELECT kid, private_sealed, public_jwk, created_at FROM zt_proxy.signing_keys ORDER BY created_at DESC, kid LIMIT 2`;
    const next: SigningKey[] = [];
    for (const r of rows) {
      const opened = await atRest.open(r.private_sealed);
      if (opened === null) throw new Error(`assertion key ${r.kid} cannot be opened with the proxy secret (was the secret changed without keeping the old one?)`);
      const publicJwk = (typeof r.public_jwk === "string" ? JSON.parse(r.public_jwk) : r.public_jwk) as JWK;
      next.push({ kid: r.kid, key: (await importJWK(opened as JWK, "ES256")) as CryptoKey, publicJwk, createdAt: r.created_at.getTime() });
    }
    keys = next;
  };

  const rotate = async (nowMs = Date.now()): Promise<boolean> => {
    const added = await sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtext('zt_proxy.signing_keys'))`;
      const [newest] = await tx<{ created_at: Date }[]>`SELECT created_at FROM zt_proxy.signing_keys ORDER BY created_at DESC LIMIT 1`;
      if (newest && nowMs - newest.created_at.getTime() < opts.rotationSec * 1000) return false;
      const k = await newKey();
      await tx`INSERT INTO zt_proxy.signing_keys (kid, private_sealed, public_jwk, created_at)
        VALUES (${k.kid}, ${await atRest.seal(k.privateJwk as Record<string, unknown>)}, ${JSON.stringify(k.publicJwk)}::jsonb, ${new Date(nowMs)})`;
      // Keep a few for investigation; only the newest two are published.
      await tx`DELETE FROM zt_proxy.signing_keys WHERE kid NOT IN (SELECT kid FROM zt_proxy.signing_keys ORDER BY created_at DESC LIMIT 5)`;
      return true;
    });
    await load();
    if (added) cache.clear();
    return added;
  };

  await rotate();
  const timer = setInterval(() => {
    rotate().catch(() => undefined);
  }, opts.reloadMs ?? 60_000);
  timer.unref();

  return {
    async assertion(who, audience, nowMs = Date.now()) {
      const current = keys[0];
      if (current === undefined) throw new Error("no assertion signing key");
      const nowSec = Math.floor(nowMs / 1000);
      const key = JSON.stringify([who.subject, who.email, who.roles, who.amr, audience]);
      const hit = cache.get(key);
      // Reused while at least 80% of its lifetime is left, so `iat` stays within a minute or so.
      if (hit && hit.kid === current.kid && hit.exp - nowSec >= opts.ttlSec * 0.8) return hit.jwt;
      const jwt = await new SignJWT({ email: who.email ?? undefined, roles: [...who.roles], amr: [...who.amr] })
        .setProtectedHeader({ alg: "ES256", kid: current.kid, typ: "JWT" })
        .setIssuer(opts.issuer)
        .setAudience(audience)
        .setSubject(who.subject)
        .setIssuedAt(nowSec)
        .setExpirationTime(nowSec + opts.ttlSec)
        .sign(current.key);
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(key, { jwt, exp: nowSec + opts.ttlSec, kid: current.kid });
      return jwt;
    },
    async jwks() {
      return { keys: keys.map((k) => k.publicJwk) };
    },
    rotate,
    close: () => clearInterval(timer),
  };
}
