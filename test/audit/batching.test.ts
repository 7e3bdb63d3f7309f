// How the writer forms live batches (host/audit/writer.ts): a batch that is not full waits
// up to its linger time for more records (fewer, larger commits), a full batch goes at once,
// and a flush never waits for the linger.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { AuditWriter, BATCH_TARGET_MS, MIN_ADAPTIVE_BATCH, nextBatchRows } from "../../host/audit/writer.js";
import { serviceRecord, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;
let sql: Sql;

beforeAll(async () => {
  dir = await tempDataDir("batching");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined, fetch_types: false });
});

afterAll(async () => {
  await sql?.end();
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("live batches", () => {
  it("a partial batch lingers for more records, a full one goes at once, and flush() does not wait for the linger", async () => {
    // A linger and a spill delay far beyond the test, so only batch size and flush move records.
    const w = new AuditWriter({ sql, spoolDir: join(dir, "spool-linger"), writerId: "linger", onSpoolFailure: "deny", batchSize: 10, batchLingerMs: 600_000, spillAfterMs: 600_000 });
    await w.start();
    try {
      for (let i = 0; i < 25; i++) w.append(serviceRecord());
      // Two full batches of 10 are sent without waiting; the last 5 wait for company.
      while (w.counters.written < 20) await sleep(10);
      await sleep(300);
      expect(w.counters.written).toBe(20);
      expect(w.queueDepth).toBe(5);
      await w.flush();
      expect(w.counters.written).toBe(25);
      expect(w.counters.spooled).toBe(0);
    } finally {
      await w.close();
    }
  });

  it("the live batch size follows the commit rate, within its bounds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), fc.double({ min: 0.01, max: 10_000, noNaN: true }), fc.integer({ min: MIN_ADAPTIVE_BATCH, max: 5000 }), (current, rows, took, max) => {
        const next = nextBatchRows(current, rows, took, max);
        expect(next).toBeGreaterThanOrEqual(MIN_ADAPTIVE_BATCH);
        expect(next).toBeLessThanOrEqual(max);
        // Towards the rows that fit the target: never away from them.
        const fits = (rows / took) * BATCH_TARGET_MS;
        if (fits >= current) expect(next).toBeGreaterThanOrEqual(Math.min(max, Math.max(MIN_ADAPTIVE_BATCH, current)));
        else expect(next).toBeLessThanOrEqual(Math.max(MIN_ADAPTIVE_BATCH, Math.min(max, current)));
        // A faster commit never gives a smaller batch.
        expect(nextBatchRows(current, rows, took / 2, max)).toBeGreaterThanOrEqual(next);
      }),
    );
  });

  it("a sustained burst is stored in full and in chain order while batches adapt", async () => {
    const w = new AuditWriter({ sql, spoolDir: join(dir, "spool-adapt"), writerId: "adapt", onSpoolFailure: "deny" });
    await w.start();
    try {
      for (let i = 0; i < 12_000; i++) w.append(serviceRecord());
      await w.flush();
      expect(w.counters.written + w.counters.spooled).toBeGreaterThanOrEqual(12_000);
      expect(w.liveBatchRows).toBeGreaterThanOrEqual(MIN_ADAPTIVE_BATCH);
      expect(w.liveBatchRows).toBeLessThanOrEqual(2000);
      const chain = w.head().chain_id;
      const [row] = await sql<{ n: number; lo: string; hi: string }[]>`SELECT count(*)::int AS n, min(seq)::text AS lo, max(seq)::text AS hi FROM zt_audit.decisions WHERE chain_id = ${chain}`;
      // PostgreSQL holds a prefix of the chain (what the spill took reaches the table by close()).
      if ((row?.n ?? 0) > 0) {
        expect(Number(row?.lo)).toBe(1);
        expect(Number(row?.hi)).toBe(row?.n);
      }
    } finally {
      await w.close();
    }
    const [after] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE chain_id LIKE 'adapt/%'`;
    expect(after?.n).toBe(12_000);
  });
});
