// WireGuard key pairs with Node's crypto (X25519; no hand-written curve arithmetic), and the
// private key file: written 0600, read only where it is applied, never logged or printed.
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { writeFileDurable } from "../common/durable-file.js";
import { isWireGuardKey } from "../../compiler/mesh/keys.js";

export interface KeyPair {
  /** base64 of the 32-byte private scalar: the text of a private key file (wg genkey's form). */
  readonly privateKey: string;
  readonly publicKey: string;
}

function b64(jwkField: string | undefined): string {
  if (!jwkField) throw new Error("X25519 key export lacks a field");
  return Buffer.from(jwkField, "base64url").toString("base64");
}

/**
 * A new key pair: 32 random bytes, clamped as `wg genkey` writes them, and the public key
 * derived by Node's X25519. Not generateKeyPairSync: on Node 20 a GC during the export of a
 * freshly generated key can deadlock in the key generation job's destructor, which hung
 * `zt mesh keygen` forever (seen in the CLI exit-code test and once in the tunnel test).
 */
export function generateKeyPair(): KeyPair {
  const raw = randomBytes(32);
  raw[0]! &= 248;
  raw[31] = (raw[31]! & 127) | 64;
  const privateKey = raw.toString("base64");
  raw.fill(0);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** The private key as a KeyObject (PKCS #8 DER: RFC 8410's fixed prefix for X25519, then the 32 bytes). */
function privateKeyObject(privateKey: string): KeyObject {
  const raw = Buffer.from(privateKey, "base64");
  if (raw.length !== 32 || !isWireGuardKey(privateKey)) throw new Error("not a WireGuard private key (32 bytes in base64)");
  const der = Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), raw]);
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

/** The public key of a private key, as `wg pubkey` computes it. */
export function publicKeyOf(privateKey: string): string {
  const jwk = createPublicKey(privateKeyObject(privateKey)).export({ format: "jwk" });
  return b64(jwk.x);
}

/** The UAPI's form of a key: 64 hex digits. */
export function keyToHex(key: string): string {
  return Buffer.from(key, "base64").toString("hex");
}

export function keyFromHex(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64");
}

export class KeyFileExistsError extends Error {}

/** Writes a private key file, mode 0600 from its first byte on; a reader sees the old key or the new one, never half. */
export async function writePrivateKeyFile(path: string, privateKey: string, overwrite: boolean): Promise<void> {
  if (!overwrite) {
    const exists = await stat(path).then(
      () => true,
      () => false,
    );
    if (exists) throw new KeyFileExistsError(`${path} exists: give --force to replace the key (a key rotation)`);
  }
  // Created 0600 (the umask can only narrow it), written whole, renamed into place.
  await writeFileDurable(path, privateKey + "\n", 0o600);
}

export type KeyFileRead = { ok: true; privateKey: string; publicKey: string; looseMode: boolean } | { ok: false; error: string };

/**
 * Reads a private key file. Errors name the file and the problem, never its content.
 * `looseMode` is true when group or others may read it (wg-quick warns about the same).
 */
export async function readPrivateKeyFile(path: string): Promise<KeyFileRead> {
  let text: string;
  let mode: number;
  try {
    text = await readFile(path, "utf8");
    mode = (await stat(path)).mode;
  } catch (e) {
    return { ok: false, error: `cannot read the private key file ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}` };
  }
  const key = text.trim();
  if (!isWireGuardKey(key)) return { ok: false, error: `the private key file ${path} does not hold a WireGuard key (32 bytes in base64, as zt mesh keygen writes)` };
  return { ok: true, privateKey: key, publicKey: publicKeyOf(key), looseMode: (mode & 0o077) !== 0 };
}
