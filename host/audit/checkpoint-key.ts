// The checkpoint signing key: Ed25519, read from a PEM file (PKCS#8), the way a KMS-mounted
// secret arrives (HIP-0044 keeps key material in KMS, HIP-0027). The database never sees it.
// Only for development does the engine generate one, into its data directory.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { writeFileDurable } from "../common/durable-file.js";

export interface CheckpointKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Hex sha256 of the public key's SPKI DER: names the key in every checkpoint. */
  keyId: string;
  publicKeyPem: string;
}

export function keyId(publicKey: KeyObject): string {
  return createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest("hex");
}

function requireEd25519(key: KeyObject, file: string): void {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new Error(`${file}: the checkpoint key must be an Ed25519 key (found ${key.asymmetricKeyType ?? "a symmetric key"})`);
  }
}

/** A key file's text; the error names the file and the reason, never the content. */
async function readKeyFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Reads the private key. Never puts the key's content in an error message. */
export async function loadCheckpointKey(file: string): Promise<CheckpointKey> {
  const pem = await readKeyFile(file, "checkpoint key");
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new Error(`${file} is not a PEM private key (expected an Ed25519 key, e.g. from "openssl genpkey -algorithm ed25519")`);
  }
  requireEd25519(privateKey, file);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyId(publicKey), publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** Development default: a key generated once into the data directory (mode 0600). */
export async function loadOrCreateCheckpointKey(file: string): Promise<CheckpointKey> {
  if (!existsSync(file)) {
    // Encoded inside the key generation: exporting a freshly generated KeyObject can deadlock
    // Node 20 when a GC during the export destroys the generation job (seen with JWK exports).
    const { privateKey } = generateKeyPairSync("ed25519", { privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
    await writeFileDurable(file, privateKey, 0o600);
  }
  return loadCheckpointKey(file);
}

/** A key verify trusts: a public key PEM, or a private key PEM (its public half is used). */
export async function loadTrustedKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, "public key");
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new Error(`${file} is not a PEM Ed25519 key`);
  }
  requireEd25519(key, file);
  return key;
}
