// The writer's durability: PostgreSQL stopped mid-load (records spool, then replay in order
// exactly once), shutdown with PostgreSQL down (spooled, replayed by the next writer), and
// the documented behaviour when even the spool cannot take records.
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, stopEmbeddedPostgres } from "../../host/audit/embedded.js";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { AuditUnavailableError, type AuditRecord } from "../../host/audit/record.js";
import { serviceRecord, tempDataDir } from "./helpers.js";

let dir: string;
let port: number;
let audit: Audit | null = null;

// The test stops and restarts the cluster under the writer; it always comes back on the
// same port, as a restarted database server would. openAudit adopts the running cluster.
async function pgUp(): Promise<void> {
  port = (await startEmbeddedPostgres({ dataDir: join(dir, "pg"), port })).port;
}

async function pgDown(): Promise<void> {
  await stopEmbeddedPostgres(join(dir, "pg"));
}

beforeAll(async () => {
  dir = await tempDataDir("writer");
  port = (await startEmbeddedPostgres({ dataDir: join(dir, "pg") })).port;
});

afterAll(async () => {
  await audit?.close();
  await pgDown();
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function settled(a: Audit): Promise<void> {
  await a.sink.flush();
  while (a.sink.status().queued > 0 || !a.sink.postgresUp) await sleep(20);
}

async function rowsFor(a: Audit, ids: string[]): Promise<Map<string, number>> {
  const sql: Sql = postgres(a.connections.engine, { max: 1, onnotice: () => undefined });
  try {
    const rows = await sql`SELECT decision_id::text AS id, count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[]) GROUP BY 1`;
    return new Map(rows.map((r) => [r.id as string, r.n as number]));
  } finally {
    await sql.end();
  }
}

describe("spill and replay", () => {
  it("PostgreSQL stopped mid-load: records spool, and all arrive exactly once, in chain order, when it returns", async () => {
    await pgUp();
    audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
    const a = audit;
    const sent: AuditRecord[] = [];
    const load = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const r = serviceRecord({ decision: i % 4 === 0 ? "DENY" : "ALLOW" });
        a.sink.append(r);
        sent.push(r);
        if (i % 200 === 0) await sleep(1);
      }
    };
    await load(3000);
    const stopping = pgDown();
    await load(3000); // while PostgreSQL shuts down and is down
    await stopping;
    await load(3000);
    await a.sink.flush(); // durable: in PostgreSQL or fsynced in the spool
    expect(a.sink.postgresUp).toBe(false);
    expect(a.sink.counters.spooled).toBeGreaterThan(0);
    const segs = (await readdir(join(dir, "spool"))).filter((n) => n.startsWith("seg-"));
    expect(segs.length).toBeGreaterThan(0);

    await pgUp();
    await settled(a);
    const counts = await rowsFor(a, sent.map((r) => r.decision_id));
    expect(counts.size).toBe(sent.length);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(a.sink.counters.dropped).toBe(0);
    const v = await a.verify();
    expect(v.broken).toEqual([]);
    expect(v.ok).toBe(true);
    // Segments whose records PostgreSQL now holds are deleted.
    const left = (await readdir(join(dir, "spool"))).filter((n) => n.startsWith("seg-"));
    expect(left).toEqual([]);
    const reg = new Registry();
    a.registerMetrics(reg);
    const text = await reg.metrics();
    expect(text).toMatch(/^zt_audit_dropped_total 0$/m);
    expect(text).toMatch(/^zt_audit_queue_depth 0$/m);
    expect(text).toMatch(/^zt_audit_postgres_up 1$/m);
    await a.close();
    audit = null;
  });

  it("close() with PostgreSQL down spools everything; the next writer replays it", async () => {
    await pgUp();
    const a = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
    audit = a;
    await pgDown();
    const sent = Array.from({ length: 2000 }, () => serviceRecord());
    for (const r of sent) a.sink.append(r);
    await a.close(); // the SIGTERM path
    audit = null;
    expect(a.sink.counters.dropped).toBe(0);
    await pgUp();
    const b = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
    audit = b;
    await settled(b);
    const counts = await rowsFor(b, sent.map((r) => r.decision_id));
    expect(counts.size).toBe(sent.length);
    expect(b.sink.counters.replayed).toBe(2000);
    expect((await b.verify()).ok).toBe(true);
    await b.close();
    audit = null;
  });
});

describe("when even the spool fails", () => {
  async function breakSpool(a: Audit): Promise<void> {
    // A regular file where the spool directory was: opening a new segment fails (ENOTDIR).
    // The writer may open a segment while the directory is being removed (ENOTEMPTY): retry.
    await rm(join(dir, "spool"), { recursive: true, force: true, maxRetries: 20, retryDelay: 20 });
    await writeFile(join(dir, "spool"), "not a directory");
    await pgDown();
    // Wait for the writer to notice both failures.
    for (let i = 0; !(a.sink.status().detail.includes("spool failing") && !a.sink.postgresUp); i++) {
      if (process.env.ZT_TEST_LOG && i % 30 === 0) console.log(a.sink.status());
      a.sink.append(serviceRecord());
      await sleep(30);
    }
  }

  async function repair(): Promise<void> {
    await rm(join(dir, "spool"), { force: true });
    await pgUp();
  }

  it("default (deny): append() throws AuditUnavailableError and every refused record is counted", async () => {
    const a = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny", logger: process.env.ZT_TEST_LOG ? (o) => console.log(JSON.stringify(o)) : undefined });
    audit = a;
    await breakSpool(a);
    expect(a.sink.status().accepting).toBe(false);
    expect(a.sink.admit(1, 10_000)).toBeNull(); // no waiting: nothing can secure the records
    const before = a.sink.counters.dropped;
    for (let i = 0; i < 5; i++) expect(() => a.sink.append(serviceRecord())).toThrow(AuditUnavailableError);
    expect(a.sink.counters.dropped).toBe(before + 5);
    const reg = new Registry();
    a.registerMetrics(reg);
    expect(await reg.metrics()).toMatch(new RegExp(`^zt_audit_dropped_total ${before + 5}$`, "m"));
    await repair();
    await a.close();
    audit = null;
  });

  it("allow-and-count: append() returns, records beyond the memory bound are counted as dropped", async () => {
    await pgUp();
    const a = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "allow-and-count", maxQueue: 50 });
    audit = a;
    await breakSpool(a);
    expect(a.sink.status().accepting).toBe(true);
    const before = a.sink.counters.dropped;
    for (let i = 0; i < 100; i++) a.sink.append(serviceRecord());
    expect(a.sink.counters.dropped).toBeGreaterThanOrEqual(before + 50);
    // Backpressure cannot make room while nothing drains: the wait ends at its timeout.
    const room = a.sink.admit(1, 100);
    expect(room).not.toBeNull();
    await room;
    expect(a.sink.backpressure.timedOut).toBe(1);
    await repair();
    await a.close();
    audit = null;
  });
});
