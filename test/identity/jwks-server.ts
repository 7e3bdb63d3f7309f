// An IAM stand-in for tests: a real HTTP server on loopback serving a JWKS, with signing keys
// that mint agent JWTs, and switches to rotate keys or break the endpoint.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import { type KeyObject, sign as cryptoSign } from "node:crypto";

export const ISSUER = "https://hanzo.id";
export const AUDIENCE = "zt.hanzo.ai";

export interface SigningKey {
  readonly kid: string;
  readonly alg: "ES256" | "RS256";
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
}

export async function signingKey(kid: string, alg: "ES256" | "RS256" = "ES256"): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey: privateKey as unknown as KeyObject, jwk };
}

export interface TokenOptions {
  readonly sub?: string | null;
  readonly iss?: string;
  readonly aud?: string | string[];
  /** Seconds relative to now; null omits the claim. */
  readonly iatOffset?: number | null;
  readonly expOffset?: number | null;
  readonly nbfOffset?: number;
  readonly scope?: string;
  readonly extra?: JWTPayload;
  /** Header kid override (default: the key's kid). */
  readonly kid?: string;
}

/** Mints a JWT like IAM's: 15 minutes, `scope` as a space-separated string. */
export async function mint(key: SigningKey, opts: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = { ...(opts.extra ?? {}) };
  if (opts.scope !== undefined) claims["scope"] = opts.scope;
  if (opts.sub !== null) claims.sub = opts.sub ?? "agent-7";
  claims.iss = opts.iss ?? ISSUER;
  claims.aud = opts.aud ?? AUDIENCE;
  if (opts.iatOffset !== null) claims.iat = now + (opts.iatOffset ?? 0);
  if (opts.expOffset !== null) claims.exp = now + (opts.expOffset ?? 900);
  if (opts.nbfOffset !== undefined) claims.nbf = now + opts.nbfOffset;
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: opts.kid ?? key.kid, typ: "JWT" }).sign(key.privateKey);
}

/**
 * Signs `header.claims` by hand (ES256 keys, JWS signature form): jose refuses to sign headers
 * a verifier must reject, such as a `crit` it does not understand.
 */
export function signRaw(key: SigningKey, header: Record<string, unknown>, claims: JWTPayload): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${input}.${cryptoSign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
}

/** A token like mint()'s whose header marks `ext` as critical (RFC 7515 4.1.11). */
export function mintCritical(key: SigningKey, ext: string, opts: { scope?: string } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = { sub: "agent-7", iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300, ...(opts.scope ? { scope: opts.scope } : {}) };
  return signRaw(key, { alg: "ES256", kid: key.kid, crit: [ext], [ext]: true }, claims);
}

export interface JwksServer {
  readonly url: URL;
  /** GET requests served so far. */
  hits(): number;
  setKeys(keys: readonly SigningKey[]): void;
  /** "ok", an HTTP 500, or hold the request open (the client times out). */
  setMode(mode: "ok" | "error" | "hang"): void;
  close(): Promise<void>;
}

export async function startJwksServer(keys: readonly SigningKey[]): Promise<JwksServer> {
  let current = keys;
  let hits = 0;
  let mode: "ok" | "error" | "hang" = "ok";
  const server: Server = createServer((req, res) => {
    hits++;
    if (req.url !== "/.well-known/jwks") {
      res.writeHead(404).end();
      return;
    }
    if (mode === "hang") return;
    if (mode === "error") {
      res.writeHead(500, { "content-type": "text/plain" }).end("down");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: current.map((k) => k.jwk) }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: new URL(`http://127.0.0.1:${port}/.well-known/jwks`),
    hits: () => hits,
    setKeys: (k) => void (current = k),
    setMode: (m) => void (mode = m),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
