// Messages between the engine thread (ThreadedAuditSink) and the audit writer thread
// (writer-thread.ts). Records cross through the shared ring (handoff-ring.ts), or, on the
// reference path (handoff "message"), in groups as one text, each record's canonical JSON
// (chain.ts canonicalRecord, written by record-json.ts) on a line of its own: for these flat
// records a JSON text and JSON.parse cost about half of a structured clone of the objects,
// the round trip is lossless for them (strings without lone surrogates, finite numbers,
// booleans, nulls), and the writer thread hashes each line as it came instead of writing
// the record out again. Canonical JSON holds no raw newline (JSON escapes control
// characters), so a newline separates records.
import type { SignedCheckpoint } from "./checkpoint.js";
import type { CheckpointSink } from "./checkpointer.js";
import type { OnSpoolFailure } from "./refusal.js";
import type { WriterCounters } from "./writer.js";

/** Signed checkpoints (docs/audit.md "Checkpoints"): where they go and how often. */
export interface CheckpointOptions {
  /** PEM file of the Ed25519 signing key (read by the writer thread). */
  keyFile: string;
  /** The checkpoint directory (a volume of its own, not the database's). */
  dir: string;
  /** Optional HTTP witness receiving each checkpoint. */
  url: string | null;
  intervalMs: number;
}

/**
 * How records cross to the writer thread: "ring" (the default) through a SharedArrayBuffer
 * ring (handoff-ring.ts); "message", the reference path, as postMessage groups. The writer
 * receives the same records in the same order either way (test/audit/handoff.property.test.ts).
 */
export type Handoff = "ring" | "message";

export interface WriterThreadOptions {
  dsn: string;
  spoolDir: string;
  writerId: string;
  onSpoolFailure: OnSpoolFailure;
  maxQueue: number;
  checkpoint: CheckpointOptions;
  /** The hand-off ring's shared memory (handoff "ring"); null: records come as "records" messages. */
  ring: SharedArrayBuffer | null;
}

/** The writer's state as the engine thread sees it (sent every tick and with every reply). */
export interface WriterSnapshot {
  /** Records the writer thread has taken from the engine thread so far. */
  received: number;
  /** Rows per live batch now (the writer adapts it to the commit rate): the backpressure bound follows it. */
  batchRows: number;
  /** Of those, records still in the writer's memory (neither committed nor spooled). */
  queueDepth: number;
  /** Age of the oldest of those records that is neither committed nor spooled, in ms (0: none). */
  lagMs: number;
  backlog: number;
  postgresUp: boolean;
  cannotSecure: boolean;
  accepting: boolean;
  queued: number;
  detail: string;
  counters: WriterCounters;
  head: { chain_id: string; seq: number; hash: string };
}

export type ToWriter =
  /** The canonical JSON of the records normalizeRecord() accepted, one per line, in append order. */
  | { t: "records"; lines: string }
  /** `through`: where the ring's stream ends for the records appended before (RingWriter.end): the writer takes them first. */
  | { t: "flush"; id: number; timeoutMs?: number; through?: number }
  /** Issue a checkpoint now (answered with "done"; error set when the directory refused it). */
  | { t: "checkpoint"; id: number }
  | { t: "close"; id: number; through?: number };

export type FromWriter =
  /** The ring has room again for records the engine thread holds back (RingWriter.pump). */
  | { t: "room" }
  | { t: "snapshot"; snapshot: WriterSnapshot }
  | { t: "done"; id: number; error: string | null; snapshot: WriterSnapshot }
  | { t: "log"; obj: Record<string, unknown> }
  /** A checkpoint was stored in the directory (`at`: epoch ms). */
  | { t: "checkpoint"; signed: SignedCheckpoint; at: number }
  | { t: "checkpoint-failure"; sink: CheckpointSink; error: string }
  | { t: "fatal"; error: string };
