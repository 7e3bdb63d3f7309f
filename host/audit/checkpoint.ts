// Signed checkpoints of the audit trail, in the way of CloudTrail's digest files and
// Certificate Transparency's signed tree heads: a writer periodically signs the head
// (chain_id, seq, hash) of its chains, with a key the database never sees, links each
// checkpoint to the one before, and stores them outside the database. A hash chain alone
// cannot show records cut from its end, a chain deleted whole, a chain rewritten
// consistently or a forged chain; checked against signed heads, each of these is caught.
import { hash as sha, sign, verify, type KeyObject } from "node:crypto";
import { canonicalJson, type ChainDeclaration, type ChainLink } from "./chain.js";

export const CHECKPOINT_FORMAT = "zt-audit-checkpoint/1";

/** One chain as a checkpoint lists it: its declaration, and its head when the checkpoint was made. */
export interface CheckpointChain {
  chain_id: string;
  started_at: string;
  predecessor: ChainLink | null;
  /** The newest record PostgreSQL holds (0: none yet; the hash is then the genesis). */
  seq: number;
  hash: string;
  /** True once the chain is finished: its writer stopped (or a successor closed it after a crash); `seq` is its last record. */
  closed: boolean;
}

export interface Checkpoint {
  format: typeof CHECKPOINT_FORMAT;
  writer_id: string;
  /** 1, 2, ... per writer. */
  n: number;
  issued_at: string;
  /** Hex sha256 of the previous checkpoint's canonical JSON (null for the writer's first). */
  prev: string | null;
  /** Hex sha256 of the signing public key (SPKI DER). */
  key_id: string;
  /** True when `chains` lists every chain of the writer; otherwise only those that changed since the previous checkpoint. */
  full: boolean;
  /** How many chains the writer has in all. */
  chain_count: number;
  chains: CheckpointChain[];
}

/** As stored in a sink and served by the API: the checkpoint and its Ed25519 signature (base64) over its canonical JSON. */
export interface SignedCheckpoint {
  checkpoint: Checkpoint;
  signature: string;
}

export function checkpointBytes(c: Checkpoint): Buffer {
  return Buffer.from(canonicalJson(c), "utf8");
}

/** What the next checkpoint's `prev` must be. */
export function checkpointHash(c: Checkpoint): string {
  return sha("sha256", checkpointBytes(c), "hex");
}

export function signCheckpoint(c: Checkpoint, privateKey: KeyObject): SignedCheckpoint {
  return { checkpoint: c, signature: sign(null, checkpointBytes(c), privateKey).toString("base64") };
}

export function signatureValid(s: SignedCheckpoint, publicKey: KeyObject): boolean {
  try {
    return verify(null, checkpointBytes(s.checkpoint), publicKey, Buffer.from(s.signature, "base64"));
  } catch {
    return false;
  }
}

/** The declaration a checkpoint's chain entry stands for (hashed into the chain's genesis). */
export function entryDeclaration(writerId: string, e: CheckpointChain): ChainDeclaration {
  return { chain_id: e.chain_id, writer_id: writerId, started_at: e.started_at, hash_version: 2, predecessor: e.predecessor };
}

// ---- parsing (a checkpoint read from a sink is untrusted input) ----------------------------

const HEX64 = /^[0-9a-f]{64}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const have = Object.keys(o);
  return have.length === keys.length && keys.every((k) => k in o);
}

function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isLink(v: unknown): v is ChainLink {
  return isObject(v) && exactKeys(v, ["chain_id", "seq", "hash"]) && typeof v.chain_id === "string" && isSeq(v.seq) && typeof v.hash === "string" && HEX64.test(v.hash);
}

function isEntry(v: unknown): v is CheckpointChain {
  return (
    isObject(v) &&
    exactKeys(v, ["chain_id", "started_at", "predecessor", "seq", "hash", "closed"]) &&
    typeof v.chain_id === "string" &&
    v.chain_id.length > 0 &&
    typeof v.started_at === "string" &&
    ISO_MS.test(v.started_at) &&
    (v.predecessor === null || isLink(v.predecessor)) &&
    isSeq(v.seq) &&
    typeof v.hash === "string" &&
    HEX64.test(v.hash) &&
    typeof v.closed === "boolean"
  );
}

const CHECKPOINT_KEYS = ["format", "writer_id", "n", "issued_at", "prev", "key_id", "full", "chain_count", "chains"] as const;

/** A signed checkpoint from its JSON form, or the reason it is not one. */
export function parseSignedCheckpoint(v: unknown): SignedCheckpoint | string {
  if (!isObject(v) || !exactKeys(v, ["checkpoint", "signature"])) return 'not a signed checkpoint ({"checkpoint", "signature"})';
  if (typeof v.signature !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(v.signature)) return "signature is not base64";
  const c = v.checkpoint;
  if (!isObject(c) || !exactKeys(c, CHECKPOINT_KEYS)) return `checkpoint must have exactly the fields ${CHECKPOINT_KEYS.join(", ")}`;
  if (c.format !== CHECKPOINT_FORMAT) return `unknown format ${JSON.stringify(c.format)}`;
  if (typeof c.writer_id !== "string" || c.writer_id.length === 0) return "writer_id must be a non-empty string";
  if (typeof c.n !== "number" || !Number.isSafeInteger(c.n) || c.n < 1) return "n must be a whole number >= 1";
  if (typeof c.issued_at !== "string" || !ISO_MS.test(c.issued_at)) return "issued_at must be an RFC 3339 UTC timestamp with milliseconds";
  if (c.prev !== null && (typeof c.prev !== "string" || !HEX64.test(c.prev))) return "prev must be a hex sha256 or null";
  if (typeof c.key_id !== "string" || !HEX64.test(c.key_id)) return "key_id must be a hex sha256";
  if (typeof c.full !== "boolean") return "full must be true or false";
  if (!isSeq(c.chain_count)) return "chain_count must be a whole number";
  if (!Array.isArray(c.chains) || !c.chains.every(isEntry)) return "chains must be a list of chain entries";
  return v as unknown as SignedCheckpoint;
}
