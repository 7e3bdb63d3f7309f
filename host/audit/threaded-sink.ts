// The engine thread's side of the audit trail: append() validates a record, applies the
// memory bound and the failure policy synchronously (so a refused record still turns into a
// DENY), and hands accepted records to the writer thread through a shared ring
// (handoff-ring.ts), or, on the reference path, in small groups of messages. Chaining,
// batching and PostgreSQL run in that thread (writer-thread.ts), off the request path.
import type { Worker } from "node:worker_threads";
import { spawnThread } from "../common/spawn-thread.js";
import { AuditUnavailableError, type AuditRecord, type AuditSink, type AuditSinkStatus } from "./record.js";
import { RecordRefusal } from "./refusal.js";
import { encodeRecord } from "./record-json.js";
import { createRing, RingWriter } from "./handoff-ring.js";
import type { SignedCheckpoint } from "./checkpoint.js";
import type { CheckpointSink } from "./checkpointer.js";
import type { FromWriter, Handoff, ToWriter, WriterSnapshot, WriterThreadOptions } from "./writer-protocol.js";
import type { WriterCounters } from "./writer.js";

/** Starts writer-thread.js (or, from TypeScript sources, writer-thread.ts) next to this file. */
function spawnWriterThread(opts: WriterThreadOptions): Worker {
  return spawnThread(import.meta.url, "writer-thread", { workerData: opts });
}

/** What ThreadedAuditSink.start() takes: the writer thread's options, and how records cross (default "ring"). */
export type SinkOptions = Omit<WriterThreadOptions, "ring"> & {
  handoff?: Handoff;
  /** The ring's size in bytes (a power of two; default DEFAULT_RING_BYTES): tests make it small to make it wrap and fill. */
  ringBytes?: number;
};

/**
 * The reference path ("message"): records cross to the writer thread in groups: a message costs about as much as a few
 * records, so a group is sent when it holds HANDOFF_BATCH records or HANDOFF_DELAY_MS after
 * its first one (far inside the 500 ms durability window), whichever comes first.
 */
const HANDOFF_BATCH = 256;
const HANDOFF_DELAY_MS = 1;

/**
 * Backpressure starts when this many of the writer's live batches wait for PostgreSQL
 * (6,000 records at the full batch of 2,000; fewer when the writer shrank its batches to
 * the commit rate): enough for its pipeline (two batches in flight, the next one filling),
 * while more only ages records towards the spill deadline, where they are written twice
 * (spool, then table).
 */
const ADMIT_BATCHES = 3;

const EMPTY_COUNTERS: WriterCounters = { written: 0, duplicates: 0, conflicts: 0, dropped: 0, rejected: 0, spooled: 0, replayed: 0 };

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** A request waiting for room for its `n` records (admit()). */
interface Admission {
  n: number;
  resolve: () => void;
  timer: NodeJS.Timeout;
}

/** The writer's signed checkpoints as the engine thread knows them (API, metrics). */
export interface CheckpointStatus {
  /** The newest checkpoint stored in the directory, or null before the first. */
  latest: SignedCheckpoint | null;
  /** When it was stored (epoch ms), or null. */
  latestAtMs: number | null;
  written: number;
  failures: Record<CheckpointSink, number>;
}

export interface CheckpointPublicKey {
  keyId: string;
  publicKeyPem: string;
}

/** How requests fared under backpressure (zt_audit_backpressure_total). */
export interface BackpressureCounters {
  /** Requests that waited and got their room. */
  admitted: number;
  /** Requests that waited the whole timeout (their records were then refused: fail closed). */
  timedOut: number;
}

export class ThreadedAuditSink implements AuditSink {
  private readonly worker: Worker;
  /** The hand-off ring; null on the reference path (records in `batch`, sent as messages). */
  private readonly ring: RingWriter | null;
  private readonly refusal: RecordRefusal;
  private readonly maxQueue: number;
  private readonly log: (obj: Record<string, unknown>) => void;
  private snap: WriterSnapshot;
  /** Records validated and serialised (record-json.ts), waiting to be sent as one text. */
  private batch: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private appended = 0;
  /** Records this side refused or lost (the writer thread counts its own). */
  private dropped = 0;
  private closed = false;
  private failure: string | null = null;
  private nextId = 1;
  private readonly replies = new Map<number, Pending>();
  private readonly exited: Promise<void>;
  // Requests waiting for room, first come first served, and the room promised to the ones
  // released but not yet appended (they resume in the microtasks after this message).
  private admissions: Admission[] = [];
  private promised = 0;
  readonly backpressure: BackpressureCounters = { admitted: 0, timedOut: 0 };
  readonly checkpoints: CheckpointStatus = { latest: null, latestAtMs: null, written: 0, failures: { directory: 0, witness: 0 } };
  /** When the sink started (epoch ms): the age of "no checkpoint yet". */
  readonly startedAtMs = Date.now();

  private constructor(
    opts: SinkOptions,
    log: (obj: Record<string, unknown>) => void,
    /** The public half of the checkpoint key (GET /v1/audit/checkpoint/key). */
    readonly checkpointKey: CheckpointPublicKey,
  ) {
    this.refusal = new RecordRefusal(opts.onSpoolFailure, log);
    this.maxQueue = opts.maxQueue;
    this.log = log;
    this.snap = { received: 0, batchRows: 2000, queueDepth: 0, lagMs: 0, backlog: 0, postgresUp: true, cannotSecure: false, accepting: true, queued: 0, detail: "starting", counters: EMPTY_COUNTERS, head: { chain_id: "", seq: 0, hash: "" } };
    const { handoff, ringBytes, ...writerOpts } = opts;
    const ring = handoff === "message" ? null : createRing(ringBytes);
    this.ring = ring === null ? null : new RingWriter(ring);
    this.worker = spawnWriterThread({ ...writerOpts, ring });
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
  }

  /** Starts the writer thread; resolves once its spool is open and its pump runs. */
  static start(opts: SinkOptions, log: (obj: Record<string, unknown>) => void, checkpointKey: CheckpointPublicKey): Promise<ThreadedAuditSink> {
    const sink = new ThreadedAuditSink(opts, log, checkpointKey);
    return new Promise((resolve, reject) => {
      let started = false;
      sink.worker.on("message", (m: FromWriter) => {
        if (m.t === "fatal" && !started) {
          started = true;
          void sink.worker.terminate();
          reject(new Error(`audit writer thread failed to start: ${m.error}`));
          return;
        }
        sink.receive(m);
        if (m.t === "snapshot" && !started) {
          started = true;
          resolve(sink);
        }
      });
      sink.worker.on("error", (e) => {
        if (!started) {
          started = true;
          reject(e);
        }
        sink.fail(`audit writer thread crashed: ${e.message}`);
      });
      sink.worker.on("exit", (code) => {
        if (!started) {
          started = true;
          reject(new Error(`audit writer thread exited (${code}) before it started`));
        }
        if (!sink.closed) sink.fail(`audit writer thread exited (${code})`);
      });
    });
  }

  private receive(m: FromWriter): void {
    if (m.t === "room") this.ring?.pump();
    else if (m.t === "log") this.log(m.obj);
    else if (m.t === "fatal") this.fail(`audit writer thread failed: ${m.error}`);
    else if (m.t === "checkpoint") {
      this.checkpoints.latest = m.signed;
      this.checkpoints.latestAtMs = m.at;
      this.checkpoints.written++;
    } else if (m.t === "checkpoint-failure") {
      this.checkpoints.failures[m.sink]++;
    } else {
      this.snap = m.snapshot;
      this.promised = 0;
      this.releaseAdmissions();
      if (m.t === "done") {
        const p = this.replies.get(m.id);
        this.replies.delete(m.id);
        if (p) {
          if (m.error === null) p.resolve();
          else p.reject(new AuditUnavailableError(m.error));
        }
      }
    }
  }

  /** The writer thread is gone: fail closed, and count what it held as lost. */
  private fail(reason: string): void {
    if (this.failure !== null) return;
    this.failure = reason;
    const known = this.snap.received - this.snap.queueDepth;
    const lost = Math.max(0, this.appended - known);
    this.dropped += lost;
    this.log({ msg: "audit: writer thread failed; refusing records (fail closed)", reason, lost });
    for (const p of this.replies.values()) p.reject(new AuditUnavailableError(reason));
    this.replies.clear();
    // Waiting is pointless now: append() refuses, and each refusal is counted.
    this.releaseAdmissions(true);
  }

  /** Deny mode with PostgreSQL and the spool both failing (the writer's last report): every record is refused. */
  private get refusingAll(): boolean {
    return this.snap.cannotSecure && this.refusal.mode === "deny";
  }

  /**
   * Room for `n` more records without pushing the writer into its overload modes: at most
   * ADMIT_BATCHES live batches waiting for PostgreSQL, and never beyond a quarter of the memory bound (from
   * half of it the writer spools and evicts everything, to be replayed later). While
   * PostgreSQL is down the spool is the sink and records wait for the spill tick by design,
   * so only the quarter applies. A request larger than the bound gets an empty queue
   * (requests behind it wait their turn, so it does get one).
   */
  private fits(n: number): boolean {
    const depth = this.queueDepth + this.promised;
    const bound = this.snap.postgresUp ? Math.min(ADMIT_BATCHES * this.snap.batchRows, this.maxQueue / 4) : this.maxQueue / 4;
    return depth === 0 || depth + n <= bound;
  }

  /**
   * Backpressure instead of refusals: when the writer thread (or PostgreSQL and the spool
   * behind it) cannot keep up, a request waits for room before it is evaluated, so a burst
   * slows callers down rather than turning into audit_unavailable denials. The wait is
   * bounded; after it append() refuses and the engine fails closed as before.
   */
  admit(n: number, timeoutMs: number): Promise<void> | null {
    // Refused at once when waiting cannot help: closed, failed, or (deny) nothing can secure records.
    if (this.closed || this.failure !== null || this.refusingAll) return null;
    if (this.admissions.length === 0 && this.fits(n)) return null;
    return new Promise<void>((resolve) => {
      const a: Admission = {
        n,
        resolve,
        timer: setTimeout(() => {
          this.admissions = this.admissions.filter((x) => x !== a);
          this.backpressure.timedOut++;
          resolve();
          // The head may have been the only one too large for the room there is.
          this.releaseAdmissions();
        }, timeoutMs),
      };
      this.admissions.push(a);
    });
  }

  /** Lets waiting requests go, in arrival order, while their records fit (all of them when `all`). */
  private releaseAdmissions(all = false): void {
    while (this.admissions.length > 0) {
      const a = this.admissions[0] as Admission;
      if (!all && !this.fits(a.n)) return;
      this.admissions.shift();
      clearTimeout(a.timer);
      if (!all) {
        this.promised += a.n;
        this.backpressure.admitted++;
      }
      a.resolve();
    }
  }

  /** Records appended here and not yet committed or spooled by the writer thread. */
  get queueDepth(): number {
    return this.appended - this.snap.received + this.snap.queueDepth;
  }

  append(record: AuditRecord): void {
    if (this.closed || this.failure !== null) {
      this.dropped++;
      throw new AuditUnavailableError(this.failure ?? "audit sink is closed");
    }
    const v = encodeRecord(record);
    if (!v.ok) {
      this.refuse(`invalid audit record at ${v.error.path}: ${v.error.message}`);
      return;
    }
    if (this.queueDepth >= this.maxQueue) return this.refuse("audit queue full");
    if (this.refusingAll) return this.refuse(`audit trail unavailable: ${this.snap.detail}`);
    this.appended++;
    if (this.promised > 0) this.promised--;
    if (this.ring !== null) return this.ring.push(v.json, v.ascii);
    this.batch.push(v.json);
    if (this.batch.length >= HANDOFF_BATCH) this.send();
    else if (this.timer === null) this.timer = setTimeout(this.sendLater, HANDOFF_DELAY_MS);
  }

  private refuse(reason: string): void {
    this.dropped++;
    this.refusal.refuse(reason, this.counters.dropped);
  }

  /** All or nothing (POST /v1/audit/ingest): every record is accepted, or none and AuditUnavailableError. */
  appendMany(records: readonly AuditRecord[]): void {
    if (this.closed || this.failure !== null) throw new AuditUnavailableError(this.failure ?? "audit sink is closed");
    if (this.queueDepth + records.length > this.maxQueue) throw new AuditUnavailableError("audit queue full");
    if (this.snap.cannotSecure) throw new AuditUnavailableError(`audit trail unavailable: ${this.snap.detail}`);
    for (const r of records) this.append(r);
  }

  private readonly sendLater = (): void => {
    this.timer = null;
    this.send();
  };

  private send(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.batch.length === 0 || this.failure !== null) return;
    const records = this.batch;
    this.batch = [];
    this.post({ t: "records", lines: records.join("\n") });
  }

  private post(m: ToWriter): void {
    this.worker.postMessage(m);
  }

  private request(m: (id: number) => ToWriter): Promise<void> {
    if (this.failure !== null) return Promise.reject(new AuditUnavailableError(this.failure));
    this.send();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.replies.set(id, { resolve, reject });
      this.post(m(id));
    });
  }

  /** Where the ring's stream ends after every record appended so far: a flush or close covers them. */
  private ringEnd(): { through?: number } {
    return this.ring === null ? {} : { through: this.ring.end };
  }

  status(): AuditSinkStatus {
    const local = this.appended - this.snap.received;
    return {
      accepting: !this.closed && this.failure === null && this.snap.accepting,
      queued: local + this.snap.queued,
      dropped: this.counters.dropped,
      detail: this.failure ?? this.snap.detail,
    };
  }

  /** Issues a signed checkpoint now (besides the periodic ones); rejects when the directory refused it. */
  checkpoint(): Promise<void> {
    if (this.closed) return Promise.reject(new AuditUnavailableError("audit sink is closed"));
    return this.request((id) => ({ t: "checkpoint", id }));
  }

  /** Resolves when every record appended so far is in PostgreSQL or fsynced in the spool. */
  flush(timeoutMs?: number): Promise<void> {
    if (this.closed) return Promise.reject(new AuditUnavailableError("audit sink is closed"));
    return this.request((id) => ({ t: "flush", id, ...(timeoutMs === undefined ? {} : { timeoutMs }), ...this.ringEnd() }));
  }

  /** SIGTERM path: the writer pushes what PostgreSQL takes, spools the rest, and its thread ends. */
  async close(): Promise<void> {
    if (this.closed) return;
    const done = this.failure === null ? this.request((id) => ({ t: "close", id, ...this.ringEnd() })) : Promise.resolve();
    this.closed = true;
    this.releaseAdmissions(true);
    try {
      await done;
    } finally {
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, 2000).unref())]);
      if (this.failure === null) await this.worker.terminate();
    }
  }

  get counters(): WriterCounters {
    const c = this.snap.counters;
    return { ...c, dropped: c.dropped + this.dropped };
  }

  get backlog(): number {
    return this.snap.backlog;
  }

  get postgresUp(): boolean {
    return this.snap.postgresUp;
  }

  /** How far PostgreSQL (or the spool) lags behind, as of the writer's last report. */
  get lagMs(): number {
    return this.snap.lagMs;
  }

  /** The newest link of the writer's chain (as of its last report). */
  head(): { chain_id: string; seq: number; hash: string } {
    return this.snap.head;
  }
}
