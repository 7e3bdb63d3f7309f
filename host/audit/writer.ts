// The AuditSink: append() validates and queues (no I/O); a single pump inserts batches into
// PostgreSQL in sequence order; a spill tick writes every record PostgreSQL has not
// committed within SPILL_AFTER_MS to the fsynced spool. Hence the durability promise
// (docs/audit.md): a record appended more than DURABILITY_WINDOW_MS ago is in PostgreSQL
// or in the spool, whatever happens to the process. Records leave memory only once
// committed or spooled, so the set of durable records is always a prefix of the chain.
import { performance } from "node:perf_hooks";
import type { Sql } from "postgres";
import { chainedRow, declaredGenesis, linkHash, linkHashOf, linkPrefix, type AuditRow, type ChainDeclaration, type ChainLink } from "./chain.js";
import { HeadFile } from "./head-file.js";
import { declareChains, ensurePartition, insertRows, insertRowsAfter, isDataError, isMissingPartition, type InsertOutcome } from "./insert.js";
import { AuditUnavailableError, type AuditRecord, type AuditSink, type AuditSinkStatus } from "./record.js";
import { lineToRow, rowToLine } from "./row-line.js";
import { RecordRefusal, type OnSpoolFailure } from "./refusal.js";
import { Spool } from "./spool.js";
import { normalizeRecord } from "./validate.js";

/** Records not committed by PostgreSQL this long after append() are spooled. */
export const SPILL_AFTER_MS = 150;
/** How often the spill tick runs. */
export const TICK_MS = 25;
/** The promise: appended more than this long ago => in PostgreSQL or fsynced in the spool. */
export const DURABILITY_WINDOW_MS = 500;

/**
 * Live batches in flight on the writer's connection: the next one is already queued at the
 * server while the previous one executes, so PostgreSQL does not idle between batches.
 */
export const PIPELINE_DEPTH = 2;

/**
 * A live batch that is not full waits up to this long for more records, unless a flush is
 * waiting for it: PostgreSQL's cost per row falls with the batch size (each commit is a
 * statement, a WAL flush and an fsync), and under a steady stream of single decisions the
 * batches would otherwise be as small as one commit's latency lets records pile up.
 */
export const BATCH_LINGER_MS = 20;

/**
 * A live batch should take PostgreSQL about this long, so that a record waits for the batch
 * ahead of it and its own (two in flight, PIPELINE_DEPTH) well inside SPILL_AFTER_MS: a
 * record still uncommitted then is written to the spool as well, which costs the writer
 * thread more than the record's insert. The batch size follows the commit rate measured on
 * full batches, between MIN_ADAPTIVE_BATCH and the configured size.
 */
export const BATCH_TARGET_MS = 30;
export const MIN_ADAPTIVE_BATCH = 500;

/**
 * The live batch size after a batch of `rows` took `tookMs` to commit: towards the rows that
 * take BATCH_TARGET_MS at that rate (smoothed: one slow commit on a busy machine moves it a
 * third of the way), between MIN_ADAPTIVE_BATCH and `max`.
 */
export function nextBatchRows(current: number, rows: number, tookMs: number, max: number): number {
  const fits = (rows / tookMs) * BATCH_TARGET_MS;
  const next = Math.round(0.7 * current + 0.3 * fits);
  return Math.max(MIN_ADAPTIVE_BATCH, Math.min(max, next));
}

export type { OnSpoolFailure } from "./refusal.js";

export interface WriterOptions {
  sql: Sql;
  spoolDir: string;
  writerId: string;
  onSpoolFailure: OnSpoolFailure;
  /** Records held in memory at most; beyond it they are spooled at once, or refused when that fails. */
  maxQueue?: number;
  batchSize?: number;
  spillAfterMs?: number;
  tickMs?: number;
  /** close(): how long to keep trying PostgreSQL before spooling the rest. */
  closeTimeoutMs?: number;
  /** How long a batch that is not full waits for more records (default BATCH_LINGER_MS). */
  batchLingerMs?: number;
  logger?: (obj: Record<string, unknown>) => void;
  /** Called whenever records became durable (committed or spooled): the writer thread reports its state then. */
  onProgress?: () => void;
  /** The head of this writer's previous chain (hashed into the new chain's genesis); null: its first chain. */
  predecessor?: ChainLink | null;
  /** When this writer run began (default now). */
  startedAt?: Date;
}

interface Entry {
  seq: number;
  row: AuditRow;
  /** The spool line, made only if the record has to be spooled (most never are). */
  line: string | null;
  /** UTC day (YYYY-MM-DD): its partition must exist before the row is inserted. */
  day: string;
  t: number;
}

interface Segment {
  path: string;
  /** Highest sequence number of this run's chain in the segment (-1: only records of earlier runs). */
  maxSeq: number;
  lines: number;
  /** Holds records that are no longer in memory: must be replayed before newer records are inserted. */
  backlog: boolean;
  /** Its unreadable lines are already in rejected.jsonl (a replay interrupted by an outage runs again). */
  quarantined?: boolean;
}

/** A failed insert, as a value: flights are awaited in order, never left to reject unobserved. */
interface Failed {
  error: unknown;
}

interface Flight {
  rows: AuditRow[];
  /** performance.now() when it was sent, and when its outcome arrived (0: not yet). */
  sentAt: number;
  doneAt: number;
  /** Sequence number of the last row. */
  last: number;
  /** null: the predecessor batch was not stored, so this one inserted nothing (see insertRowsAfter). */
  done: Promise<InsertOutcome | null | Failed>;
}

const WOKEN: unique symbol = Symbol("woken");

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface WriterCounters {
  written: number;
  /** Records whose key was already taken (re-sent by a sidecar): stored in zt_audit.duplicates. */
  duplicates: number;
  /** Of those, records whose content differed from the stored one. */
  conflicts: number;
  dropped: number;
  rejected: number;
  spooled: number;
  replayed: number;
}

export class AuditWriter implements AuditSink {
  readonly chainId: string;
  /** Declared before the chain's first record is stored; its hash is the chain's genesis. */
  readonly declaration: ChainDeclaration;
  private readonly sql: Sql;
  private readonly spool: Spool;
  private readonly maxQueue: number;
  private readonly batchSize: number;
  /** Rows per live batch now (adapted to the commit rate, see BATCH_TARGET_MS). */
  private batchRows: number;
  /** When the last live batch's outcome arrived: a pipelined batch executes from then on. */
  private lastDoneAt = 0;
  private readonly spillAfterMs: number;
  private readonly tickMs: number;
  private readonly closeTimeoutMs: number;
  private readonly lingerMs: number;
  /** When launch() held back a batch to let it fill: the time it goes anyway. */
  private lingerUntil: number | null = null;
  private readonly log: (obj: Record<string, unknown>) => void;
  private readonly onProgress: () => void;
  private readonly refusal: RecordRefusal;

  // Appended, validated, not yet chained (chaining happens off the caller's stack).
  private incoming: AuditRecord[] = [];
  /** Each incoming record's canonical JSON when the engine thread wrote it (null: write it here). */
  private incomingText: (string | null)[] = [];
  private incomingT: number[] = [];
  private drainScheduled = false;
  // Chained records in memory; sequence numbers are contiguous from q[qHead].
  private q: Entry[] = [];
  private qHead = 0;
  private lastSeq = 0;
  private prevHash: string;
  /** linkPrefix(chainId): what every link's hashed text starts with. */
  private readonly prefix: string;

  private committedThrough = 0;
  /** durableThrough() when onProgress was last called. */
  private reported = 0;
  private spooledThrough = 0;
  private segments: Segment[] = [];
  private backlogRecords = 0;
  /** Days whose partition this writer knows to exist (forgotten when an insert finds one gone). */
  private readonly days = new Set<string>();
  /** Chain declarations (this run's and earlier runs' from the spool) not yet known to be in PostgreSQL. */
  private undeclared: ChainDeclaration[] = [];
  private readonly headFile: HeadFile;
  /** Highest sequence number ever sent to PostgreSQL or the spool (the head file's bound for a crashed chain). */
  private sentThrough = 0;
  private committedHead: ChainLink;
  private spooledHead: ChainLink;

  private pgUp = true;
  private pgError = "";
  private spoolFailed = false;
  private spoolError = "";
  private spilling = false;
  private closed = false;
  private stopping = false;
  private abort = false;
  private wake: (() => void) | null = null;
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  private pumpDone: Promise<void> = Promise.resolve();

  readonly counters: WriterCounters = { written: 0, duplicates: 0, conflicts: 0, dropped: 0, rejected: 0, spooled: 0, replayed: 0 };

  constructor(opts: WriterOptions) {
    this.sql = opts.sql;
    this.spool = new Spool(opts.spoolDir);
    this.maxQueue = opts.maxQueue ?? 100_000;
    this.batchSize = opts.batchSize ?? 2000;
    this.batchRows = this.batchSize;
    this.spillAfterMs = opts.spillAfterMs ?? SPILL_AFTER_MS;
    this.tickMs = opts.tickMs ?? TICK_MS;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.lingerMs = opts.batchLingerMs ?? BATCH_LINGER_MS;
    this.log = opts.logger ?? (() => undefined);
    this.refusal = new RecordRefusal(opts.onSpoolFailure, this.log);
    this.onProgress = opts.onProgress ?? (() => undefined);
    // One chain per writer run: a restarted writer never has to learn the head of its
    // previous chain from the database (which may be unreachable); the head it had (from
    // its checkpoints and its head file) is declared as the new chain's predecessor.
    const started = opts.startedAt ?? new Date();
    const stamp = started.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    this.chainId = `${opts.writerId}/${stamp}-${Math.random().toString(16).slice(2, 8)}`;
    this.declaration = { chain_id: this.chainId, writer_id: opts.writerId, started_at: started.toISOString(), hash_version: 2, predecessor: opts.predecessor ?? null };
    this.prevHash = declaredGenesis(this.declaration);
    this.prefix = linkPrefix(this.chainId);
    this.committedHead = { chain_id: this.chainId, seq: 0, hash: this.prevHash };
    this.spooledHead = this.committedHead;
    this.headFile = new HeadFile(opts.spoolDir);
  }

  /** Opens the spool (segments left by a crash or an outage become backlog, replayed first) and starts the pump. */
  async start(): Promise<void> {
    const found = await this.spool.open();
    // The declaration is durable before any record of the chain can be: a replay of this
    // chain's spooled records (after a crash) always finds it.
    this.undeclared = [...(await this.spool.declarations()), this.declaration];
    await this.spool.declare(this.declaration);
    this.headFile.write(this.durableLink(), 0);
    for (const s of found) {
      this.segments.push({ path: s.path, maxSeq: -1, lines: s.lines, backlog: true });
      this.backlogRecords += s.lines;
    }
    if (found.length > 0) this.log({ msg: "audit: replaying spool from an earlier run", segments: found.length, records: this.backlogRecords });
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.pumpDone = this.pump();
  }

  append(record: AuditRecord): void {
    const v = normalizeRecord(record);
    if (!v.ok) return this.refuse(`invalid audit record at ${v.error.path}: ${v.error.message}`);
    this.accept(v.value, null);
  }

  /**
   * A record normalizeRecord() already accepted (the writer thread: the engine thread
   * validated it), with its canonical JSON (chain.ts canonicalRecord) as the engine thread
   * wrote it: the link hash covers that text, so it is not written out again here.
   */
  appendCanonical(record: AuditRecord, text: string): void {
    this.accept(record, text);
  }

  /** PostgreSQL and the spool both failing: a record appended now could not be made durable. */
  get cannotSecure(): boolean {
    return this.spoolFailed && !this.pgUp;
  }

  private accept(record: AuditRecord, text: string | null): void {
    if (this.closed) {
      this.counters.dropped++;
      throw new AuditUnavailableError("audit sink is closed");
    }
    const depth = this.incoming.length + (this.q.length - this.qHead);
    const cannotSecure = this.cannotSecure;
    if (depth >= this.maxQueue || (cannotSecure && this.refusal.mode === "deny")) {
      return this.refuse(cannotSecure ? `audit trail unavailable: PostgreSQL (${this.pgError}) and spool (${this.spoolError}) both failing` : "audit queue full");
    }
    this.incoming.push(record);
    this.incomingText.push(text);
    this.incomingT.push(performance.now());
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(() => this.drainIncoming());
    }
  }

  private refuse(reason: string): void {
    this.counters.dropped++;
    this.refusal.refuse(reason, this.counters.dropped);
  }

  status(): AuditSinkStatus {
    const queued = this.incoming.length + (this.q.length - this.qHead) + this.backlogRecords;
    let detail = this.pgUp ? "postgres ok" : `spooling: ${this.pgError}`;
    if (this.spoolFailed) detail += `; spool failing: ${this.spoolError}`;
    if (this.backlogRecords > 0 && this.pgUp) detail += `; replaying ${this.backlogRecords} spooled records`;
    return {
      accepting: !this.closed && !(this.refusal.mode === "deny" && this.cannotSecure),
      queued,
      dropped: this.counters.dropped,
      detail,
    };
  }

  /** Records in memory (not yet committed). */
  get queueDepth(): number {
    return this.incoming.length + (this.q.length - this.qHead);
  }

  /** Age in ms of the oldest record neither committed nor spooled (0: none): how far PostgreSQL lags. */
  pendingAgeMs(now: number = performance.now()): number {
    const head = this.headSeq();
    const i = this.qHead + Math.max(0, this.durableThrough() + 1 - head);
    if (i < this.q.length) return now - (this.q[i] as Entry).t;
    const t = this.incomingT[0];
    return t === undefined ? 0 : now - t;
  }

  /** Records in spool segments that are no longer in memory (to be replayed). */
  get backlog(): number {
    return this.backlogRecords;
  }

  /** The newest link of this run's chain (in memory; not necessarily durable yet). */
  head(): ChainLink {
    this.drainIncoming();
    return { chain_id: this.chainId, seq: this.lastSeq, hash: this.prevHash };
  }

  /** The newest record PostgreSQL has committed (seq 0: none; the hash is then the genesis). What checkpoints anchor. */
  committedLink(): ChainLink {
    return this.committedHead;
  }

  /** The newest record that is committed or fsynced in the spool: where the chain ends if the process stops now. */
  durableLink(): ChainLink {
    return this.spooledHead.seq > this.committedHead.seq ? this.spooledHead : this.committedHead;
  }

  get postgresUp(): boolean {
    return this.pgUp;
  }

  /** PostgreSQL is reachable and holds every declaration and every spooled record of earlier runs. */
  get caughtUp(): boolean {
    return this.pgUp && this.undeclared.length === 0 && !this.segments.some((s) => s.backlog);
  }

  flush(timeoutMs?: number): Promise<void> {
    this.drainIncoming();
    const seq = this.lastSeq;
    if (this.durableThrough() >= seq) return Promise.resolve();
    if (this.closed) return Promise.reject(new AuditUnavailableError("audit sink is closed"));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { seq, resolve, reject };
      this.waiters.push(w);
      // A batch held back to fill up goes now (launch() does not linger while a flush waits).
      this.kick();
      if (timeoutMs !== undefined) {
        const t = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new AuditUnavailableError(`audit records not durable after ${timeoutMs} ms (${this.status().detail})`));
        }, timeoutMs);
        w.resolve = () => {
          clearTimeout(t);
          resolve();
        };
        w.reject = (e) => {
          clearTimeout(t);
          reject(e);
        };
      }
    });
  }

  /** SIGTERM path: push what PostgreSQL takes within closeTimeoutMs, spool the rest, release everything. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.drainIncoming();
    this.stopping = true;
    this.kick();
    const deadline = new Promise<void>((r) => setTimeout(r, this.closeTimeoutMs).unref());
    await Promise.race([this.pumpDone, deadline]);
    this.abort = true;
    this.kick();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    while (this.spilling) await new Promise((r) => setTimeout(r, 5));
    await this.spill(true);
    if (this.durableThrough() < this.lastSeq) {
      const lost = this.lastSeq - this.durableThrough();
      this.counters.dropped += lost;
      this.log({ msg: "audit: records lost at shutdown (PostgreSQL and spool both failed)", lost, spool: this.spoolError });
    }
    for (const w of this.waiters) {
      if (w.seq <= this.durableThrough()) w.resolve();
      else w.reject(new AuditUnavailableError("audit sink closed before the records were durable"));
    }
    this.waiters = [];
    await Promise.race([this.pumpDone, new Promise((r) => setTimeout(r, 1000).unref())]);
    await this.spool.close();
    this.headFile.close();
  }

  // ---- internals -------------------------------------------------------------------

  private headSeq(): number {
    return this.qHead < this.q.length ? (this.q[this.qHead] as Entry).seq : this.lastSeq + 1;
  }

  private durableThrough(): number {
    return Math.max(this.committedThrough, this.spooledThrough);
  }

  private drainIncoming(): void {
    this.drainScheduled = false;
    const recs = this.incoming;
    const texts = this.incomingText;
    const ts = this.incomingT;
    if (recs.length === 0) return;
    this.incoming = [];
    this.incomingText = [];
    this.incomingT = [];
    for (let i = 0; i < recs.length; i++) {
      const r = recs[i] as AuditRecord;
      const text = texts[i] as string | null;
      const seq = ++this.lastSeq;
      const prev = this.prevHash;
      const hash = text !== null ? linkHashOf(prev, this.prefix, seq, text) : linkHash(prev, this.chainId, seq, r);
      const row = chainedRow(r, this.chainId, seq, prev, hash);
      this.prevHash = hash;
      this.q.push({ seq, row, line: null, day: r.timestamp.slice(0, 10), t: ts[i] as number });
    }
    this.kick();
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private resolveWaiters(): void {
    const d = this.durableThrough();
    // A report per advance, not per call: the spill tick calls this every 25 ms, and the
    // writer thread reports its state on its own tick anyway.
    if (d > this.reported) {
      this.reported = d;
      this.onProgress();
    }
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.seq <= d) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private markDown(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    if (this.pgUp) this.log({ msg: "audit: PostgreSQL unavailable, spooling", error: msg });
    this.pgUp = false;
    this.pgError = msg;
  }

  private async pump(): Promise<void> {
    let backoff = 100;
    const flights: Flight[] = [];
    while (!this.abort) {
      if (!this.pgUp) {
        await this.sleep(backoff);
        if (this.abort) break;
        try {
          await this.sql`SELECT 1`;
          this.pgUp = true;
          this.pgError = "";
          backoff = 100;
          this.log({ msg: "audit: PostgreSQL reachable again", backlog: this.backlogRecords });
        } catch (e) {
          this.pgError = e instanceof Error ? e.message : String(e);
          backoff = Math.min(backoff * 2, 5000);
        }
        continue;
      }
      if (flights.length === 0) {
        if (this.undeclared.length > 0) {
          await this.declarePending();
          continue;
        }
        const seg = this.segments.find((s) => s.backlog);
        if (seg) {
          await this.replay(seg);
          continue;
        }
        if (this.stopping && this.qHead >= this.q.length) break;
      }
      this.launch(flights);
      const f = flights[0];
      if (!f) {
        await this.sleep(this.lingerUntil === null ? 1000 : Math.max(1, this.lingerUntil - performance.now()));
        continue;
      }
      // New records wake the pump so a full follow-up batch goes out while this one runs.
      const out = await this.awaitOrWake(f.done);
      if (out === WOKEN) continue;
      flights.shift();
      if (!(await this.settle(f, out))) {
        // The pipeline is broken: what was sent after f inserted nothing (or is counted
        // below); everything from the head of the queue is sent again.
        const resend = flights.splice(0);
        for (const rest of resend) {
          const r = await rest.done;
          if (r !== null && !("error" in r)) this.count(r);
          else if (r !== null && !isDataError(r.error)) this.markDown(r.error);
        }
        if (resend.length > 0 && this.pgUp) this.log({ msg: "audit: batch did not commit in full; the batches pipelined after it are sent again", batches: resend.length });
      }
    }
  }

  /** Sends live batches until PIPELINE_DEPTH are in flight; a follow-up batch only when full (fewer, larger commits). */
  private launch(flights: Flight[]): void {
    this.lingerUntil = null;
    while (flights.length < PIPELINE_DEPTH && !this.segments.some((s) => s.backlog)) {
      const prev = flights[flights.length - 1];
      const head = this.headSeq();
      const from = prev ? prev.last + 1 : head;
      const start = this.qHead + (from - head);
      if (start < this.qHead || start >= this.q.length) return;
      const size = this.batchRows;
      const end = Math.min(this.q.length, start + size);
      if (prev && end - start < size && !this.stopping) return;
      if (!prev && end - start < size && !this.stopping && this.waiters.length === 0) {
        const until = (this.q[start] as Entry).t + this.lingerMs;
        if (performance.now() < until) {
          this.lingerUntil = until;
          return;
        }
      }
      const rows: AuditRow[] = new Array(end - start);
      const days = new Set<string>();
      for (let i = start; i < end; i++) {
        const e = this.q[i] as Entry;
        rows[i - start] = e.row;
        days.add(e.day);
      }
      const after = prev ? (prev.rows[prev.rows.length - 1] as AuditRow) : null;
      const last = (rows[rows.length - 1] as AuditRow).seq;
      this.noteSent(last);
      const flight: Flight = { rows, last, sentAt: performance.now(), doneAt: 0, done: this.send(rows, days, after) };
      flight.done = flight.done.then((out) => {
        flight.doneAt = performance.now();
        return out;
      });
      flights.push(flight);
    }
  }

  private send(rows: AuditRow[], days: Set<string>, after: AuditRow | null): Promise<InsertOutcome | null | Failed> {
    const run = (): Promise<InsertOutcome | null> => (after ? insertRowsAfter(this.sql, rows, after) : insertRows(this.sql, rows, true));
    return this.withPartitions(days, run).catch((error: unknown): Failed => ({ error }));
  }

  /**
   * Runs an insert once the partitions of its days exist. A partition this writer created
   * earlier may have been dropped since (retention, an operator): PostgreSQL then refuses
   * the rows for want of a partition, which is not the rows' fault, so the days are
   * ensured again and the insert retried, instead of the records being set aside as
   * rejected after the engine acknowledged them.
   */
  private async withPartitions<T>(days: Iterable<string>, insert: () => Promise<T>): Promise<T> {
    for (const d of days) {
      if (!this.days.has(d)) {
        await ensurePartition(this.sql, d);
        this.days.add(d);
      }
    }
    try {
      return await insert();
    } catch (e) {
      if (!isMissingPartition(e)) throw e;
      this.log({ msg: "audit: a partition the writer knew is gone; creating it again", error: (e as Error).message });
      for (const d of days) {
        await ensurePartition(this.sql, d);
        this.days.add(d);
      }
      return insert();
    }
  }

  /** Records the highest sequence number sent (before it is sent): the bound of the chain if the process dies now. */
  private noteSent(seq: number): void {
    if (seq <= this.sentThrough) return;
    this.sentThrough = seq;
    this.headFile.write(this.durableLink(), seq);
  }

  /** Declarations must reach PostgreSQL before any record of their chains. Leaves pgUp false on a connection problem. */
  private async declarePending(): Promise<void> {
    try {
      await declareChains(this.sql, this.undeclared);
      this.undeclared = [];
      await this.spool.declarationsStored();
    } catch (e) {
      this.markDown(e);
    }
  }

  private awaitOrWake<T>(p: Promise<T>): Promise<T | typeof WOKEN> {
    return new Promise((resolve) => {
      const wake = (): void => resolve(WOKEN);
      this.wake = wake;
      void p.then((v) => {
        if (this.wake === wake) this.wake = null;
        resolve(v);
      });
    });
  }

  /** Books a finished flight. False when the batches sent after it must be sent again. */
  private async settle(f: Flight, out: InsertOutcome | null | Failed): Promise<boolean> {
    if (out === null) return false;
    if ("error" in out) {
      if (!isDataError(out.error)) {
        this.markDown(out.error);
        return false;
      }
      await this.isolate(f.rows);
      if (!this.pgUp) return false;
      this.commitThrough(f.rows[f.rows.length - 1] as AuditRow);
      return false;
    }
    this.count(out);
    this.adaptBatch(f);
    this.commitThrough(f.rows[f.rows.length - 1] as AuditRow);
    return true;
  }

  /**
   * The rows a batch can hold to take BATCH_TARGET_MS at the rate this one committed at
   * (from its send, or from its predecessor's commit when it waited behind it), smoothed.
   * Only batches of at least half the current size count: a small lingering batch says
   * more about the per-commit overhead than about the rate.
   */
  private adaptBatch(f: Flight): void {
    const took = f.doneAt - Math.max(f.sentAt, this.lastDoneAt);
    this.lastDoneAt = f.doneAt;
    if (this.batchSize <= MIN_ADAPTIVE_BATCH || f.rows.length * 2 < this.batchRows || took <= 0) return;
    this.batchRows = nextBatchRows(this.batchRows, f.rows.length, took, this.batchSize);
  }

  /** Rows per live batch now (reported to the engine thread: its backpressure bound follows it). */
  get liveBatchRows(): number {
    return this.batchRows;
  }

  /** Inserts one batch of replayed rows; on a data error isolates the offending rows. Leaves pgUp false on a connection problem. */
  private async replayBatch(rows: AuditRow[], days: Iterable<string>): Promise<void> {
    try {
      this.count(await this.withPartitions(days, () => insertRows(this.sql, rows, false)));
    } catch (e) {
      if (!isDataError(e)) {
        this.markDown(e);
        return;
      }
      await this.isolate(rows);
    }
  }

  /** One bad row must not block the trail: inserts one by one, quarantines what fails. Leaves pgUp false on a connection problem. */
  private async isolate(rows: AuditRow[]): Promise<void> {
    const refused: string[] = [];
    let reason = "";
    for (const row of rows) {
      try {
        this.count(await this.withPartitions([row.ts.slice(0, 10)], () => insertRows(this.sql, [row], false)));
      } catch (e) {
        if (!isDataError(e)) {
          this.markDown(e);
          break;
        }
        refused.push(rowToLine(row));
        reason = (e as Error).message;
      }
    }
    if (refused.length > 0) await this.reject(refused, reason);
  }

  private count(out: InsertOutcome): void {
    this.counters.written += out.inserted;
    this.counters.duplicates += out.duplicates;
    if (out.conflicts > 0) {
      this.counters.conflicts += out.conflicts;
      this.log({ msg: "audit: decision_id reused by a different record; kept in zt_audit.duplicates", count: out.conflicts });
    }
  }

  private async reject(lines: string[], reason: string): Promise<void> {
    this.counters.rejected += lines.length;
    this.log({ msg: "audit: records refused by PostgreSQL, quarantined in spool/rejected.jsonl", count: lines.length, reason });
    try {
      await this.spool.quarantine(lines, reason);
    } catch (e) {
      this.counters.dropped += lines.length;
      this.log({ msg: "audit: cannot quarantine refused records", error: String(e) });
    }
  }

  /** Everything of this run's chain up to `last` is in PostgreSQL. */
  private commitThrough(last: AuditRow): void {
    const seq = last.seq;
    if (seq > this.committedThrough) {
      this.committedThrough = seq;
      this.committedHead = { chain_id: this.chainId, seq, hash: last.hash };
      this.headFile.write(this.durableLink(), this.sentThrough);
    }
    while (this.qHead < this.q.length && (this.q[this.qHead] as Entry).seq <= seq) this.qHead++;
    this.compact();
    this.resolveWaiters();
    void this.deleteCommittedSegments();
  }

  private compact(): void {
    if (this.qHead > 4096 && this.qHead * 2 > this.q.length) {
      this.q = this.q.slice(this.qHead);
      this.qHead = 0;
    }
  }

  /** Segments of this run whose records PostgreSQL now has. */
  private async deleteCommittedSegments(): Promise<void> {
    if (this.spilling) return;
    // Segments of earlier runs (maxSeq -1) are only ever released by their replay.
    const done = this.segments.filter((s) => s.maxSeq >= 1 && s.maxSeq <= this.committedThrough);
    if (done.length === 0) return;
    this.segments = this.segments.filter((s) => !done.includes(s));
    for (const s of done) if (s.backlog) this.backlogRecords = Math.max(0, this.backlogRecords - s.lines);
    for (const s of done) await this.spool.remove(s.path);
  }

  private async replay(seg: Segment): Promise<void> {
    let content;
    try {
      content = await Spool.read(seg.path);
    } catch (e) {
      this.log({ msg: "audit: cannot read spool segment", path: seg.path, error: String(e) });
      seg.backlog = false;
      return;
    }
    const quarantine = !seg.quarantined;
    seg.quarantined = true;
    if (quarantine && content.corrupt.length > 0) await this.reject(content.corrupt, "corrupt spool line");
    if (content.tornTail) this.log({ msg: "audit: spool segment ends with a partial line (crash during write; never acknowledged)", path: seg.path });
    const rows: AuditRow[] = [];
    const malformed: string[] = [];
    for (const line of content.lines) {
      const row = lineToRow(line);
      if (row) rows.push(row);
      else malformed.push(line);
    }
    if (quarantine && malformed.length > 0) await this.reject(malformed, "malformed spool line");
    for (let i = 0; i < rows.length; i += this.batchSize) {
      const batch = rows.slice(i, i + this.batchSize);
      const days = new Set(batch.map((r) => r.ts.slice(0, 10)));
      await this.replayBatch(batch, days);
      if (!this.pgUp || this.abort) return; // the whole segment is retried later
    }
    this.counters.replayed += rows.length;
    if (this.segments.includes(seg)) {
      this.backlogRecords = Math.max(0, this.backlogRecords - seg.lines);
      this.segments = this.segments.filter((s) => s !== seg);
    }
    if (seg.maxSeq > this.committedThrough) {
      const last = rows.reduce<AuditRow | null>((a, r) => (r.chain_id === this.chainId && r.seq === seg.maxSeq ? r : a), null);
      if (last) this.commitThrough(last);
    }
    while (this.spilling) await new Promise((r) => setTimeout(r, 2));
    await this.spool.remove(seg.path);
  }

  private async tick(): Promise<void> {
    if (this.spilling || this.closed) return;
    this.drainIncoming();
    const overfull = this.q.length - this.qHead >= this.maxQueue / 2;
    await this.spill(!this.pgUp || overfull);
  }

  /** Spools unspooled records older than the spill delay (all of them when `all`). */
  private async spill(all: boolean): Promise<void> {
    if (this.spilling) return;
    const head = this.headSeq();
    let from = Math.max(this.spooledThrough + 1, head);
    const limit = performance.now() - this.spillAfterMs;
    let to = from - 1;
    for (let i = this.qHead + (from - head); i < this.q.length; i++) {
      const e = this.q[i] as Entry;
      if (!all && e.t > limit) break;
      to = e.seq;
    }
    if (to >= from) {
      const lines: string[] = [];
      for (let i = this.qHead + (from - head); i <= this.qHead + (to - head); i++) {
        const e = this.q[i] as Entry;
        lines.push((e.line ??= rowToLine(e.row)));
      }
      const lastRow = (this.q[this.qHead + (to - head)] as Entry).row;
      this.spilling = true;
      try {
        this.noteSent(to);
        const path = await this.spool.append(lines);
        let seg = this.segments.find((s) => s.path === path);
        if (!seg) {
          seg = { path, maxSeq: to, lines: 0, backlog: false };
          this.segments.push(seg);
        }
        seg.maxSeq = to;
        seg.lines += lines.length;
        this.spooledThrough = to;
        this.spooledHead = { chain_id: this.chainId, seq: to, hash: lastRow.hash };
        this.headFile.write(this.durableLink(), this.sentThrough);
        this.counters.spooled += lines.length;
        if (this.spoolFailed) this.log({ msg: "audit: spool writable again" });
        this.spoolFailed = false;
        this.spoolError = "";
      } catch (e) {
        if (!this.spoolFailed) this.log({ msg: "audit: spool write failed", error: String(e) });
        this.spoolFailed = true;
        this.spoolError = e instanceof Error ? e.message : String(e);
      } finally {
        this.spilling = false;
      }
      from = to + 1;
    }
    this.resolveWaiters();
    if (!this.pgUp || this.q.length - this.qHead >= this.maxQueue / 2) this.evictSpooled();
    if (this.committedThrough >= this.spooledThrough) await this.deleteCommittedSegments();
  }

  /** Frees memory: spooled records leave the queue; their segments become backlog, replayed before anything newer. */
  private evictSpooled(): void {
    const upTo = Math.min(this.spooledThrough, this.lastSeq);
    if (this.qHead >= this.q.length || (this.q[this.qHead] as Entry).seq > upTo) return;
    let n = 0;
    while (this.qHead < this.q.length && (this.q[this.qHead] as Entry).seq <= upTo) {
      this.qHead++;
      n++;
    }
    this.compact();
    for (const s of this.segments) {
      if (!s.backlog && s.maxSeq > this.committedThrough) {
        s.backlog = true;
        this.backlogRecords += s.lines;
      }
    }
    // New spills must not land in a segment the replay is about to read and delete.
    void this.spool.seal();
    if (n > 0) this.kick();
  }
}
