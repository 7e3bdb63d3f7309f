// The audit writer's own thread: chaining (sha256 per record), batching and the PostgreSQL
// protocol run here, so the engine thread only validates a record and hands it over. Its
// event loop also runs the spill tick, which a busy engine thread can no longer delay, and
// the signed checkpoints of the writer's chains.
import { parentPort, workerData } from "node:worker_threads";
import type { ChainLink } from "./chain.js";
import { loadCheckpointKey } from "./checkpoint-key.js";
import { CheckpointDirectory, CheckpointWitness } from "./checkpoint-store.js";
import { Checkpointer, type ChainEndReader } from "./checkpointer.js";
import { connect } from "./connect.js";
import { RingReader } from "./handoff-ring.js";
import { HeadFile } from "./head-file.js";
import { SCHEMA } from "./migrations.js";
import type { AuditRecord } from "./record.js";
import type { FromWriter, ToWriter, WriterSnapshot, WriterThreadOptions } from "./writer-protocol.js";
import { AuditWriter, TICK_MS } from "./writer.js";

if (!parentPort) throw new Error("writer-thread.ts runs as a worker thread");
const port = parentPort;
const opts = workerData as WriterThreadOptions;
const send = (m: FromWriter): void => port.postMessage(m);
const log = (obj: Record<string, unknown>): void => send({ t: "log", obj });

const sql = connect(opts.dsn, 1, "zt-audit-writer");
let reportQueued = false;
let received = 0;
let writer: AuditWriter;
let checkpointer: Checkpointer;
let ticker: NodeJS.Timeout | undefined;
let checkpointTimer: NodeJS.Timeout | undefined;

/**
 * The hand-off ring (handoff-ring.ts), unless records come as messages (the reference path).
 * While records flow the ring is looked at every RING_POLL_MS, so they cross in groups of a
 * millisecond's worth without a wake-up each; after RING_IDLE_POLLS empty looks this thread
 * sleeps on the ring until the engine thread's next record wakes it.
 */
const reader = opts.ring ? new RingReader(opts.ring) : null;
const RING_POLL_MS = 1;
const RING_IDLE_POLLS = 25;
let emptyPolls = 0;
let ringStopped = false;

function snapshot(): WriterSnapshot {
  const st = writer.status();
  return {
    received,
    batchRows: writer.liveBatchRows,
    queueDepth: writer.queueDepth,
    lagMs: writer.pendingAgeMs(),
    backlog: writer.backlog,
    postgresUp: writer.postgresUp,
    cannotSecure: writer.cannotSecure,
    accepting: st.accepting,
    queued: st.queued,
    detail: st.detail,
    counters: { ...writer.counters },
    head: writer.head(),
  };
}

/** The last periodic report, as text: an idle writer does not wake the engine thread 40 times a second to say nothing new. */
let lastReport = "";
function reportIfChanged(): void {
  const snap = snapshot();
  const text = JSON.stringify(snap);
  if (text === lastReport) return;
  lastReport = text;
  send({ t: "snapshot", snapshot: snap });
}

/** One group from the engine thread: a record's canonical JSON per line. */
function take(lines: string): void {
  let from = 0;
  for (;;) {
    const end = lines.indexOf("\n", from);
    const text = end === -1 ? lines.slice(from) : lines.slice(from, end);
    received++;
    const record = JSON.parse(text) as AuditRecord;
    try {
      writer.appendCanonical(record, text);
    } catch {
      // Refused by the writer's own bound: already counted in counters.dropped.
    }
    if (end === -1) return;
    from = end + 1;
  }
}

/** Takes the records in the ring; false when there were none. Tells the engine thread when records it holds back fit now. */
function drainRing(ring: RingReader): boolean {
  const text = ring.take();
  if (ring.roomWanted()) send({ t: "room" });
  if (text === null) return false;
  take(text);
  return true;
}

function pollRing(): void {
  if (ringStopped || !reader) return;
  if (drainRing(reader)) emptyPolls = 0;
  else if (++emptyPolls >= RING_IDLE_POLLS) {
    emptyPolls = 0;
    const woken = reader.sleep();
    if (woken !== null) {
      void woken.then(pollRing);
      return;
    }
  }
  setTimeout(pollRing, RING_POLL_MS);
}

/** Takes the ring's records up to `end` (the engine thread's RingWriter.end when it sent a flush or close). */
async function drainRingTo(end: number | undefined): Promise<void> {
  if (!reader || end === undefined) return;
  while ((drainRing(reader), !reader.reached(end))) await new Promise((r) => setTimeout(r, RING_POLL_MS));
}

/** The newest record of a crashed chain PostgreSQL holds, no further than what its process sent. */
const readChainEnd: ChainEndReader = async (chainId, bound) => {
  const [row] = await sql.unsafe<{ seq: string; hash: string }[]>(
    `SELECT seq::text AS seq, encode(hash, 'hex') AS hash FROM (
       SELECT seq, hash FROM ${SCHEMA}.decisions WHERE chain_id = $1 AND seq <= $2::bigint
       UNION ALL SELECT seq, hash FROM ${SCHEMA}.duplicates WHERE chain_id = $1 AND seq <= $2::bigint) t
     ORDER BY t.seq DESC LIMIT 1`,
    [chainId, String(bound ?? Number.MAX_SAFE_INTEGER)],
  );
  return row ? { chain_id: chainId, seq: Number(row.seq), hash: row.hash } : null;
};

function checkpointNow(): Promise<boolean> {
  // Crashed chains are closed once PostgreSQL holds everything their process made durable.
  return checkpointer.tick(writer.committedLink(), writer.caughtUp ? readChainEnd : null);
}

async function settle(m: Extract<ToWriter, { t: "flush" | "close" }>): Promise<void> {
  let error: string | null = null;
  try {
    await drainRingTo(m.through);
    if (m.t === "flush") await writer.flush(m.timeoutMs);
    else await writer.close();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  if (m.t === "close") {
    clearInterval(checkpointTimer);
    const final: ChainLink = writer.durableLink();
    if (!(await checkpointer.finish(final))) log({ msg: "audit: the closing checkpoint was not written; the chain stays open until the next run closes it", chain_id: final.chain_id });
  }
  send({ t: "done", id: m.id, error, snapshot: snapshot() });
  if (m.t === "close") {
    ringStopped = true;
    clearInterval(ticker);
    await sql.end({ timeout: 5 });
    port.close();
  }
}

async function start(): Promise<void> {
  const key = await loadCheckpointKey(opts.checkpoint.keyFile);
  const witness = opts.checkpoint.url
    ? new CheckpointWitness(opts.checkpoint.url, (error) => send({ t: "checkpoint-failure", sink: "witness", error }))
    : null;
  checkpointer = await Checkpointer.open({
    writerId: opts.writerId,
    key,
    directory: new CheckpointDirectory(opts.checkpoint.dir, opts.writerId),
    witness,
    log,
    onCheckpoint: (signed) => send({ t: "checkpoint", signed, at: Date.now() }),
    onFailure: (sink, error) => send({ t: "checkpoint-failure", sink, error }),
  });
  // Read before the new run overwrites it: where the previous run's chain really ended.
  const predecessor = checkpointer.plan(HeadFile.read(opts.spoolDir));
  writer = new AuditWriter({
    sql,
    spoolDir: opts.spoolDir,
    writerId: opts.writerId,
    onSpoolFailure: opts.onSpoolFailure,
    maxQueue: opts.maxQueue,
    predecessor,
    logger: log,
    // A fresh report as soon as records became durable, so the engine thread's view of the
    // queue (its memory bound, a producer pacing itself on it) does not lag by a whole tick.
    onProgress: () => {
      if (reportQueued) return;
      reportQueued = true;
      setImmediate(() => {
        reportQueued = false;
        send({ t: "snapshot", snapshot: snapshot() });
      });
    },
  });
  await writer.start();
  // Declared in a signed checkpoint before the engine may append a single record.
  await checkpointer.declare(writer.declaration, writer.committedLink().hash);
  send({ t: "snapshot", snapshot: snapshot() });
  ticker = setInterval(() => {
    // Belt and braces: even a missed wake-up leaves a record in the ring one tick at most.
    if (reader && !ringStopped) drainRing(reader);
    reportIfChanged();
  }, TICK_MS);
  pollRing();
  checkpointTimer = setInterval(() => void checkpointNow(), opts.checkpoint.intervalMs);
}

// Records are taken synchronously, in arrival order, so a flush or close covers every
// record sent before it; a slow flush never holds later records back. With the ring, the
// records already in it are taken before any message, and a flush or close first takes
// the ring up to where it ended when it was sent.
port.on("message", (m: ToWriter) => {
  if (reader && !ringStopped) drainRing(reader);
  if (m.t === "records") take(m.lines);
  else if (m.t === "checkpoint") {
    void checkpointNow().then((ok) => send({ t: "done", id: m.id, error: ok ? null : "checkpoint not written (see the log)", snapshot: snapshot() }));
  }
  else void settle(m);
});

start().catch((e: unknown) => send({ t: "fatal", error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
