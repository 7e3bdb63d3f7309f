// The engine thread's side of the audit trail (host/audit/threaded-sink.ts): records cross
// to the writer thread and reach PostgreSQL, the counters are the thread's, and a writer
// thread that dies makes the sink refuse records (fail closed) and count what it held.
import type { Worker } from "node:worker_threads";
import { rm } from "node:fs/promises";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { AuditUnavailableError } from "../../host/audit/record.js";
import { serviceRecord, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;

beforeAll(async () => {
  dir = await tempDataDir("threaded");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
});

afterAll(async () => {
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

async function storedCount(ids: string[]): Promise<number> {
  const sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
  try {
    const [row] = await sql`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`;
    return row?.n as number;
  } finally {
    await sql.end();
  }
}

describe("ThreadedAuditSink", () => {
  it("hands records to the writer thread; after flush they are in PostgreSQL and the counters say so", async () => {
    const records = Array.from({ length: 500 }, () => serviceRecord());
    const before = audit.sink.counters.written;
    for (const r of records) audit.sink.append(r);
    expect(audit.sink.status().queued).toBeGreaterThanOrEqual(500); // not yet taken by the thread
    await audit.sink.flush();
    while (audit.sink.status().queued > 0) await new Promise((r) => setTimeout(r, 10));
    expect(await storedCount(records.map((r) => r.decision_id))).toBe(500);
    expect(audit.sink.counters.written - before).toBe(500);
    expect(audit.sink.counters.dropped).toBe(0);
    expect(audit.sink.head().seq).toBeGreaterThanOrEqual(500);
  });

  it("an invalid record is refused on the engine thread, synchronously, and counted", () => {
    const before = audit.sink.counters.dropped;
    expect(() => audit.sink.append({ ...serviceRecord(), decision_id: "not-a-uuid" })).toThrow(AuditUnavailableError);
    expect(audit.sink.counters.dropped).toBe(before + 1);
  });

  it("when the writer thread dies: later records are refused (fail closed) and the ones it held are counted as dropped", async () => {
    const before = audit.sink.counters.dropped;
    const held = Array.from({ length: 100 }, () => serviceRecord());
    for (const r of held) audit.sink.append(r);
    const worker = (audit.sink as unknown as { worker: Worker }).worker;
    await worker.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(audit.sink.status().accepting).toBe(false);
    expect(audit.sink.status().detail).toMatch(/writer thread/);
    expect(() => audit.sink.append(serviceRecord())).toThrow(AuditUnavailableError);
    await expect(audit.sink.flush()).rejects.toBeInstanceOf(AuditUnavailableError);
    // Every one of the 100 is either stored or counted as lost; none vanishes silently.
    const stored = await storedCount(held.map((r) => r.decision_id));
    const lost = audit.sink.counters.dropped - before - 1; // minus the one refused after the failure
    expect(stored + lost).toBe(100);
  });
});
