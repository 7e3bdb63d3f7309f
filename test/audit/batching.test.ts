// How the writer forms live batches (host/audit/writer.ts): a batch that is not full waits
// up to its linger time for more records (fewer, larger commits), a full batch goes at once,
// and a flush never waits for the linger.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { AuditWriter } from "../../host/audit/writer.js";
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
});
