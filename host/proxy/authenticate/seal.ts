// Encrypted, integrity-protected values: the session and login-state cookies, and the tokens
// stored with a session (at rest in PostgreSQL). A compact JWE (dir, A256GCM) with jose, under a
// key derived per purpose from the proxy secret; `kid` names the key so a rotated secret still
// opens what it sealed. A value sealed for one purpose never opens for another.
import { createHash, hkdfSync } from "node:crypto";
import { decodeProtectedHeader, EncryptJWT, jwtDecrypt, type JWTPayload } from "jose";

export type Purpose = "session-cookie" | "login-state" | "at-rest";

interface Key {
  readonly kid: string;
  readonly bytes: Uint8Array;
}

export interface Sealer {
  /** Seals `payload` (and `exp`, when given, seconds since the epoch). */
  seal(payload: Record<string, unknown>, expSec?: number): Promise<string>;
  /** The payload, or null for anything forged, tampered, expired, or sealed for another purpose. */
  open(value: string): Promise<JWTPayload | null>;
}

function derive(secret: Buffer, purpose: Purpose): Key {
  const bytes = new Uint8Array(hkdfSync("sha256", secret, "zt-proxy", purpose, 32));
  return { kid: createHash("sha256").update(bytes).digest("base64url").slice(0, 12), bytes };
}

/** `secrets[0]` seals; every secret opens (a rotation keeps the previous one for a while). */
export function createSealer(secrets: readonly Buffer[], purpose: Purpose): Sealer {
  if (secrets.length === 0) throw new Error("no proxy secret");
  const keys = secrets.map((s) => derive(s, purpose));
  const byKid = new Map(keys.map((k) => [k.kid, k]));
  const current = keys[0]!;
  return {
    async seal(payload, expSec) {
      const jwt = new EncryptJWT(payload).setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: current.kid });
      if (expSec !== undefined) jwt.setExpirationTime(expSec);
      return jwt.encrypt(current.bytes);
    },
    async open(value) {
      if (value.length > 4096 || value.split(".").length !== 5) return null;
      try {
        const kid = decodeProtectedHeader(value).kid;
        const key = typeof kid === "string" ? byKid.get(kid) : undefined;
        if (!key) return null;
        const { payload } = await jwtDecrypt(value, key.bytes, { contentEncryptionAlgorithms: ["A256GCM"], keyManagementAlgorithms: ["dir"] });
        return payload;
      } catch {
        return null;
      }
    },
  };
}
