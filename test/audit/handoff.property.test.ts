// The two hand-offs to the writer thread (host/audit/threaded-sink.ts): the shared ring and
// the reference path, postMessage groups. The same generated records, appended in the same
// bursts with flushes between some of them, to one sink of each kind: both writer threads
// chain exactly the records appended, in append order, with the same content. The ring is
// made small (4 KiB) so that it wraps, fills (records wait on the engine thread for room)
// and takes records larger than itself.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import type { AuditRecord } from "../../host/audit/record.js";
import { ThreadedAuditSink } from "../../host/audit/threaded-sink.js";
import type { Handoff } from "../../host/audit/writer-protocol.js";
import { checkpointSetup, operatorRecord, tempDataDir } from "./helpers.js";
import { awkwardRecords } from "./record-arbitraries.js";

let dir: string;
let audit: Audit;
let sql: postgres.Sql;
const sinks = new Map<Handoff, ThreadedAuditSink>();

beforeAll(async () => {
  dir = await tempDataDir("handoff");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
  for (const handoff of ["message", "ring"] as const) {
    const cp = await checkpointSetup(join(dir, `cp-${handoff}`));
    const opts = { dsn: audit.connections.engine, spoolDir: join(dir, `spool-${handoff}`), writerId: `handoff-${handoff}`, onSpoolFailure: "deny" as const, maxQueue: 100_000, checkpoint: cp.options };
    sinks.set(handoff, await ThreadedAuditSink.start({ ...opts, handoff, ringBytes: 4096 }, () => undefined, cp.key));
  }
}, 120_000);

afterAll(async () => {
  for (const s of sinks.values()) await s.close();
  await sql?.end();
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A record up to several times the test ring's size (long caller, roles of 1 to 4 byte characters). */
const huge = fc.integer({ min: 1, max: 4 }).map((k): AuditRecord => {
  const r = operatorRecord("sre-é€𝄞", "postgres", "connect");
  return { ...r, caller: "spiffe://hanzo.ai/é/".repeat(100), operator: { ...r.operator!, roles: Array.from({ length: 8 * k }, (_, i) => `r${i}-` + "é€𝄞x".repeat(50)) } };
});
const records = fc.oneof(
  { weight: 8, arbitrary: awkwardRecords({ nasty: ["\\", '"', "{}", "NULL", "\u2028", "𝄞"], days: 2, latency: fc.integer({ min: 0, max: 10_000_000 }) }) },
  { weight: 1, arbitrary: huge },
);
/** Bursts appended synchronously; `flush`: wait for durability before the next burst. */
const bursts = fc.array(fc.record({ records: fc.array(records, { minLength: 1, maxLength: 40 }), flush: fc.boolean() }), { minLength: 1, maxLength: 6 });

/** The records of `chainId` with seq above `after`, in chain order, without what only the chain adds. */
async function chained(chainId: string, after: number): Promise<unknown[]> {
  const rows = await sql`
    SELECT to_jsonb(t) - 'chain_id' - 'seq' - 'prev_hash' - 'hash' AS r FROM (
      SELECT * FROM zt_audit.decisions WHERE chain_id = ${chainId} AND seq > ${after}
      UNION ALL SELECT * FROM zt_audit.duplicates WHERE chain_id = ${chainId} AND seq > ${after}) t
    ORDER BY t.seq`;
  return rows.map((x) => x.r as unknown);
}

describe("audit hand-off: shared ring vs postMessage (reference)", () => {
  it("the writer thread chains the same records in the same order either way", async () => {
    // Bursts that found the ring full (records waiting on the engine thread for room).
    let filled = 0;
    const ring = sinks.get("ring") as unknown as { ring: { waitingForRoom: number } };
    await fc.assert(
      fc.asyncProperty(bursts, async (script) => {
        const start = new Map([...sinks].map(([k, s]) => [k, s.head().seq]));
        for (const b of script) {
          for (const s of sinks.values()) for (const r of b.records) s.append(r);
          if (ring.ring.waitingForRoom > 0) filled++;
          if (b.flush) await Promise.all([...sinks.values()].map((s) => s.flush()));
        }
        await Promise.all([...sinks.values()].map((s) => s.flush()));
        // The snapshot after the flush carries the chain head.
        const got = new Map<Handoff, unknown[]>();
        for (const [k, s] of sinks) got.set(k, await chained(s.head().chain_id, start.get(k)!));
        const ids = script.flatMap((b) => b.records.map((r) => r.decision_id));
        const ref = got.get("message")!;
        expect(ref.map((r) => (r as { decision_id: string }).decision_id)).toEqual(ids);
        expect(got.get("ring")).toEqual(ref);
        for (const s of sinks.values()) expect(s.counters.dropped).toBe(0);
      }),
      { numRuns: 12 },
    );
    expect(filled).toBeGreaterThan(0);
  }, 600_000);
});
