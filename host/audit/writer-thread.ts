// The audit writer's own thread: chaining (sha256 per record), batching and the PostgreSQL
// protocol run here, so the engine thread only validates a record and hands it over. Its
// event loop also runs the spill tick, which a busy engine thread can no longer delay.
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "./connect.js";
import type { AuditRecord } from "./record.js";
import type { FromWriter, ToWriter, WriterSnapshot, WriterThreadOptions } from "./writer-protocol.js";
import { AuditWriter, TICK_MS } from "./writer.js";

if (!parentPort) throw new Error("writer-thread.ts runs as a worker thread");
const port = parentPort;
const opts = workerData as WriterThreadOptions;
const send = (m: FromWriter): void => port.postMessage(m);

const sql = connect(opts.dsn, 1, "zt-audit-writer");
let reportQueued = false;
const writer = new AuditWriter({
  sql,
  spoolDir: opts.spoolDir,
  writerId: opts.writerId,
  onSpoolFailure: opts.onSpoolFailure,
  maxQueue: opts.maxQueue,
  logger: (obj) => send({ t: "log", obj }),
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
let received = 0;

function snapshot(): WriterSnapshot {
  const st = writer.status();
  return {
    received,
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

function take(records: AuditRecord[]): void {
  received += records.length;
  for (const r of records) {
    try {
      writer.appendNormalized(r);
    } catch {
      // Refused by the writer's own bound: already counted in counters.dropped.
    }
  }
}

async function settle(m: Extract<ToWriter, { t: "flush" | "close" }>): Promise<void> {
  let error: string | null = null;
  try {
    if (m.t === "flush") await writer.flush(m.timeoutMs);
    else await writer.close();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  send({ t: "done", id: m.id, error, snapshot: snapshot() });
  if (m.t === "close") {
    clearInterval(ticker);
    await sql.end({ timeout: 5 });
    port.close();
  }
}

// Records are taken synchronously, in arrival order, so a flush or close covers every
// record sent before it; a slow flush never holds later records back.
port.on("message", (m: ToWriter) => {
  if (m.t === "records") take(JSON.parse(m.json) as AuditRecord[]);
  else void settle(m);
});

let ticker: NodeJS.Timeout;
writer
  .start()
  .then(() => {
    send({ t: "snapshot", snapshot: snapshot() });
    ticker = setInterval(() => send({ t: "snapshot", snapshot: snapshot() }), TICK_MS);
  })
  .catch((e: unknown) => send({ t: "fatal", error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
