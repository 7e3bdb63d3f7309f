// GET /v1/graph reads rolled-up hours (migration 6) and the trail's rows for the rest. Its answer
// must be exactly the reference's (graphRawSql: every record of the window aggregated from the
// trail): generated trails, windows that cut hours, roll-ups at any point, and records arriving
// late for hours already rolled up (a spool replay, an old batch ingested), stored as the engine
// role so the late-record trigger runs as it does in production.
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import fc from "fast-check";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGraph, graphRawSql, graphSql, type GraphQuery } from "../../host/audit/graph.js";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { runGraphRollup, runRetention } from "../../host/audit/maintenance.js";
import type { AuditRecord } from "../../host/audit/record.js";
import { operatorRecord, serviceRecord, storeRecords, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;
let engine: Sql;
let maint: Sql;
let owner: Sql;

const quiet = { max: 2, onnotice: () => undefined };

beforeAll(async () => {
  dir = await tempDataDir("graph-rollup");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  engine = postgres(audit.connections.engine, quiet);
  maint = postgres(audit.connections.maintenance as string, quiet);
  owner = postgres(audit.connections.owner as string, quiet);
});

afterAll(async () => {
  await Promise.all([engine?.end(), maint?.end(), owner?.end()]);
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

const HOUR = 3600_000;
const IDS = ["spiffe://hanzo.ai/a/ns/api", "spiffe://hanzo.ai/a/ns/db", "spiffe://hanzo.ai/b/ns/api", "spiffe://hanzo.ai/b/other/x"];

type GenRecord = typeof recordArb extends fc.Arbitrary<infer T> ? T : never;
type GenWindow = typeof windowArb extends fc.Arbitrary<infer T> ? T : never;

/** A record `msAgo` before now: a service call between two of a few workloads, or an operator request (no edge). */
const recordArb = fc.record({
  msAgo: fc.oneof(fc.integer({ min: 0, max: 30 * HOUR }), fc.integer({ min: 0, max: 40 * 60_000 })),
  src: fc.constantFrom(...IDS),
  dst: fc.constantFrom(...IDS),
  port: fc.constantFrom(443, 8080),
  deny: fc.boolean(),
  enforced: fc.boolean(),
  operator: fc.integer({ min: 0, max: 9 }),
});

function toRecord(g: GenRecord, now: number): AuditRecord {
  const timestamp = new Date(now - g.msAgo).toISOString();
  if (g.operator === 0) return { ...operatorRecord("alice@hanzo.ai", "ns/db", "exec", g.deny ? "DENY" : "ALLOW"), timestamp };
  const r = serviceRecord({ source: g.src, destination: g.dst, port: g.port, decision: g.deny ? "DENY" : "ALLOW", enforced: g.enforced, timestamp });
  r.decision_id = randomUUID();
  return r;
}

/** A window inside the generated span, its ends anywhere (most cut an hour), or aligned to hours. */
const windowArb = fc.record({
  a: fc.integer({ min: -32 * HOUR, max: HOUR }),
  len: fc.oneof(fc.integer({ min: 1, max: 34 * HOUR }), fc.integer({ min: 1, max: 34 }).map((h) => h * HOUR)),
  aligned: fc.boolean(),
  limit: fc.oneof(fc.constant(1000), fc.integer({ min: 1, max: 6 })),
});

function windowOf(w: GenWindow, now: number): GraphQuery {
  let since = now + w.a;
  if (w.aligned) since = Math.floor(since / HOUR) * HOUR;
  return { since: new Date(since), until: new Date(since + w.len), format: "json", limit: w.limit };
}

async function expectSame(windows: GraphQuery[]): Promise<void> {
  for (const q of windows) {
    const fast = await buildGraph(audit.query, q, graphSql);
    const reference = await buildGraph(audit.query, q, graphRawSql);
    expect(fast, `${q.since.toISOString()} .. ${q.until.toISOString()} limit ${q.limit}`).toEqual(reference);
  }
}

describe("the graph's hourly roll-up", () => {
  it("answers exactly as the trail aggregated, across roll-ups and late records", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArb, { minLength: 1, maxLength: 40 }),
        fc.array(recordArb, { maxLength: 15 }),
        fc.array(windowArb, { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        async (first, late, windows, rollBetween) => {
          const now = Date.now();
          const qs = windows.map((w) => windowOf(w, now));
          await storeRecords(engine, first.map((g) => toRecord(g, now)));
          await expectSame(qs);
          if (rollBetween) await runGraphRollup(maint);
          await expectSame(qs);
          // Late records for hours the roll-up may already hold: marked, read from the trail.
          await storeRecords(engine, late.map((g) => toRecord(g, now)));
          await expectSame(qs);
          await runGraphRollup(maint);
          await expectSame(qs);
        },
      ),
      { numRuns: 25 },
    );
    // The fast path was taken: rolled-up hours with edges, and no mark left after the last
    // roll-up for an hour it could roll up (ended LATE_AFTER, 15 minutes, before it ran).
    await runGraphRollup(maint);
    const [r] = await owner<{ hours: number; rows: number; marks: number }[]>`
      SELECT (SELECT count(*)::int FROM zt_audit.graph_rolled_hours) AS hours,
             (SELECT count(*)::int FROM zt_audit.graph_hours) AS rows,
             (SELECT count(*)::int FROM zt_audit.graph_late_hours
               WHERE hour + interval '1 hour' <= clock_timestamp() - interval '20 minutes') AS marks`;
    expect(r!.hours).toBeGreaterThan(20);
    expect(r!.rows).toBeGreaterThan(0);
    expect(r!.marks).toBe(0);
  }, 600_000);

  it("marks the hour of a late record, and only of a late service record", async () => {
    const before = await owner<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.graph_late_hours`;
    const now = Date.now();
    const late = serviceRecord({ timestamp: new Date(now - 5 * HOUR).toISOString() });
    const onTime = serviceRecord({ timestamp: new Date(now - 60_000).toISOString() });
    const operator = { ...operatorRecord("bob@hanzo.ai", "ns/db", "exec"), timestamp: new Date(now - 5 * HOUR).toISOString() };
    await storeRecords(engine, [late, onTime, operator]);
    const marks = await owner<{ hour: Date }[]>`SELECT hour FROM zt_audit.graph_late_hours ORDER BY hour`;
    expect(marks.length - before[0]!.n).toBe(1);
    expect(marks.map((m) => m.hour.getTime())).toContain(Math.floor((now - 5 * HOUR) / HOUR) * HOUR);
    await runGraphRollup(maint);
  });

  it("waits for the transactions open when it starts before it reads the trail", async () => {
    const events: string[] = [];
    const conn = await engine.reserve();
    try {
      // A transaction with an id, as one storing records has.
      await conn`BEGIN`;
      await conn`SELECT pg_current_xact_id()`;
      const rolling = runGraphRollup(maint).then(() => events.push("rolled up"));
      // The roll-up cannot finish while this transaction is open; give it time to try.
      await new Promise((r) => setTimeout(r, 500));
      events.push("committed");
      await conn`COMMIT`;
      await rolling;
    } finally {
      conn.release();
    }
    expect(events).toEqual(["committed", "rolled up"]);
  });

  it("keeps the engine role to reading the roll-up, and the maintenance role to the function", async () => {
    await expect(engine`INSERT INTO zt_audit.graph_late_hours (hour) VALUES (now())`).rejects.toThrow(/permission denied/);
    await expect(engine`DELETE FROM zt_audit.graph_hours`).rejects.toThrow(/permission denied/);
    await expect(engine`DELETE FROM zt_audit.graph_rolled_hours`).rejects.toThrow(/permission denied/);
    await expect(engine`SELECT zt_audit.roll_up_graph(1)`).rejects.toThrow(/permission denied/);
    await expect(maint`DELETE FROM zt_audit.graph_late_hours`).rejects.toThrow(/permission denied/);
    await expect(maint`INSERT INTO zt_audit.graph_rolled_hours (hour) VALUES (now())`).rejects.toThrow(/permission denied/);
    const [n] = await engine<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.graph_hours`;
    expect(n!.n).toBeGreaterThanOrEqual(0);
  });

  it("drops the roll-up of the days retention drops, with them", async () => {
    const old = Date.now() - 400 * 24 * HOUR;
    await storeRecords(engine, [serviceRecord({ timestamp: new Date(old).toISOString() }), serviceRecord({ timestamp: new Date(old + HOUR).toISOString() })]);
    await runGraphRollup(maint);
    const count = async (): Promise<number> => {
      const [r] = await owner<{ n: number }[]>`
        SELECT (SELECT count(*) FROM zt_audit.graph_hours WHERE hour < ${new Date(old + 2 * 24 * HOUR)})::int
             + (SELECT count(*) FROM zt_audit.graph_rolled_hours WHERE hour < ${new Date(old + 2 * 24 * HOUR)})::int AS n`;
      return r!.n;
    };
    expect(await count()).toBeGreaterThan(0);
    const report = await runRetention(maint, 365);
    expect(report.dropped.length).toBeGreaterThan(0);
    expect(await count()).toBe(0);
    const q: GraphQuery = { since: new Date(old - HOUR), until: new Date(old + 3 * HOUR), format: "json", limit: 1000 };
    expect(await buildGraph(audit.query, q, graphSql)).toEqual(await buildGraph(audit.query, q, graphRawSql));
  });
});
