// The batch insert (column arrays expanded by unnest): every value comes back exactly as
// appended, whatever characters it holds; re-sent rows are stored once and counted as
// duplicates or conflicts; a pipelined batch never commits when its predecessor did not;
// spool lines that are not rows are quarantined, not inserted.
import { randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rowToRecord, type AuditRow, type StoredColumns } from "../../host/audit/chain.js";
import type { Audit } from "../../host/audit/index.js";
import { batchParameters, ensurePartition, insertRows, insertRowsAfter } from "../../host/audit/insert.js";
import type { AuditRecord } from "../../host/audit/record.js";
import { lineToRow, rowToLine } from "../../host/audit/row-line.js";
import { chainedRows, normalisedRecord, operatorRecord, serviceRecord, trailForFile } from "./helpers.js";
import { awkwardRecords } from "./record-arbitraries.js";

const trail = trailForFile("insert");

async function settle(a: Audit): Promise<void> {
  await a.sink.flush();
  while (a.sink.status().queued > 0 || !a.sink.postgresUp) await new Promise((r) => setTimeout(r, 10));
}

async function stored(ids: string[]): Promise<Map<string, AuditRecord>> {
  const rows = await trail.engine<(StoredColumns & { id: string })[]>`
    SELECT *, decision_id::text AS id FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.id, rowToRecord({ ...r, decision_id: r.id })]));
}

/** The test's own chains, declared (as chains from before declarations) before verify runs. */
const testChains: string[] = [];

/** Rows of a chain of the test's own (not the writer's), for calling the insert functions directly. */
function chainRows(records: AuditRecord[], chainId = `test/${randomUUID()}`): AuditRow[] {
  testChains.push(chainId);
  return chainedRows(records, chainId);
}

const NASTY = ['"', "\\", '\\"', "{", "}", "{a,b}", ",", " padded ", "NULL", "null", "''", "a\nb\tc", "\u00e9\u0301", "\u{1F510}", "\\x00ff", "\"{}\""];

describe("column-array insert", () => {
  it("stores every value exactly as appended: quotes, backslashes, braces, NULL-looking text, any Unicode", async () => {
    const arb = awkwardRecords({ nasty: NASTY, days: 6, latency: fc.nat(5_000_000) });
    const records = fc.sample(arb, { numRuns: 400, seed: 44 });
    // Every awkward value at least once in each field kind, whatever the generator chose.
    for (const s of NASTY) records.push({ ...operatorRecord(s, s, s), operator: { subject: s, roles: [s, ...NASTY], mfa: false, incident: s }, reason: s, origin: s, caller: s });
    for (const r of records) trail.audit.sink.append(r);
    await settle(trail.audit);

    const got = await stored(records.map((r) => r.decision_id));
    expect(got.size).toBe(records.length);
    for (const r of records) expect(got.get(r.decision_id)).toEqual(normalisedRecord(r));
    expect(trail.audit.sink.counters.rejected).toBe(0);
    expect(trail.audit.sink.counters.dropped).toBe(0);
    // verify recomputes each hash from the stored columns: nothing was altered on the way.
    const v = await trail.audit.verify();
    expect(v.broken).toEqual([]);
    expect(v.ok).toBe(true);
  });

  it("encodes every column as one array literal of the batch's length", () => {
    const rows = chainRows([serviceRecord(), operatorRecord("a\"b", "svc", "act")]);
    const params = batchParameters(rows);
    expect(params).toHaveLength(25);
    // ts, decision_id, ..., operator_roles (null for the service record, a nested literal otherwise)
    expect(params[9]).toBe('{NULL,"{\\"sre\\"}"}');
    expect(params[8]).toBe('{NULL,"a\\"b"}');
    expect(params[16]).toBe("{t,t}");
  });
});

describe("re-sent rows", () => {
  it("a batch sent twice is stored once; the same records at new chain positions are duplicates; changed content is a conflict", async () => {
    const records = Array.from({ length: 50 }, () => serviceRecord());
    const rows = chainRows(records);
    await ensurePartition(trail.engine, (rows[0] as AuditRow).ts.slice(0, 10));
    expect(await insertRows(trail.engine, rows, true)).toEqual({ inserted: 50, duplicates: 0, conflicts: 0 });
    // Commit reply lost, batch sent again: the plain INSERT hits the key and falls back.
    expect(await insertRows(trail.engine, rows, true)).toEqual({ inserted: 0, duplicates: 0, conflicts: 0 });
    expect(await insertRows(trail.engine, rows, false)).toEqual({ inserted: 0, duplicates: 0, conflicts: 0 });

    // A sidecar re-sending the records: same content, another chain.
    const again = chainRows(records);
    expect(await insertRows(trail.engine, again, true)).toEqual({ inserted: 0, duplicates: 50, conflicts: 0 });
    // Two different decisions sharing ids (and timestamps).
    const changed = chainRows(records.slice(0, 5).map((r) => ({ ...r, decision: "DENY" as const, reason: "default_deny" })));
    expect(await insertRows(trail.engine, changed, true)).toEqual({ inserted: 0, duplicates: 5, conflicts: 5 });

    const ids = records.map((r) => r.decision_id);
    const [d] = await trail.engine<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`;
    const [dup] = await trail.engine<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.duplicates WHERE decision_id = ANY(${ids}::uuid[])`;
    expect(d?.n).toBe(50);
    expect(dup?.n).toBe(55);
  });

  it("a pipelined batch inserts nothing unless its predecessor's last row is stored", async () => {
    const rows = chainRows(Array.from({ length: 30 }, () => serviceRecord()));
    const first = rows.slice(0, 10);
    const second = rows.slice(10, 20);
    const third = rows.slice(20);
    await ensurePartition(trail.engine, (rows[0] as AuditRow).ts.slice(0, 10));
    // The predecessor batch failed (never stored): the follower must not leave a hole.
    expect(await insertRowsAfter(trail.engine, second, first[first.length - 1] as AuditRow)).toBeNull();
    const ids = rows.map((r) => r.decision_id);
    const count = async (): Promise<number> =>
      ((await trail.engine<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`)[0] as { n: number }).n;
    expect(await count()).toBe(0);
    expect(await insertRows(trail.engine, first, true)).toEqual({ inserted: 10, duplicates: 0, conflicts: 0 });
    expect(await insertRowsAfter(trail.engine, second, first[first.length - 1] as AuditRow)).toEqual({ inserted: 10, duplicates: 0, conflicts: 0 });
    // Sent twice after a stored predecessor: the key is taken, the idempotent path answers.
    expect(await insertRowsAfter(trail.engine, second, first[first.length - 1] as AuditRow)).toEqual({ inserted: 0, duplicates: 0, conflicts: 0 });
    expect(await insertRowsAfter(trail.engine, third, second[second.length - 1] as AuditRow)).toEqual({ inserted: 10, duplicates: 0, conflicts: 0 });
    expect(await count()).toBe(30);
  });

  it("records re-sent in the middle of a pipelined load are stored once and the chain stays intact", async () => {
    const before = { ...trail.audit.sink.counters };
    const earlier = Array.from({ length: 20 }, () => serviceRecord());
    for (const r of earlier) trail.audit.sink.append(r);
    await settle(trail.audit);
    // 20,000 records appended at once: batches go out two at a time; the re-sent records
    // land inside later batches, whose plain INSERT then fails on the taken key.
    const fresh: AuditRecord[] = [];
    for (let i = 0; i < 20_000; i++) {
      if (i % 1000 === 500) trail.audit.sink.append(earlier[(i / 1000) | 0] as AuditRecord);
      const r = serviceRecord({ decision: i % 3 ? "ALLOW" : "DENY" });
      fresh.push(r);
      trail.audit.sink.append(r);
    }
    await settle(trail.audit);
    const ids = fresh.map((r) => r.decision_id);
    const counts = await trail.engine<{ n: number }[]>`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[]) GROUP BY decision_id`;
    expect(counts.length).toBe(fresh.length);
    expect(counts.every((c) => c.n === 1)).toBe(true);
    expect(trail.audit.sink.counters.written - before.written).toBe(20 + 20_000);
    expect(trail.audit.sink.counters.duplicates - before.duplicates).toBe(20);
    expect(trail.audit.sink.counters.conflicts - before.conflicts).toBe(0);
    expect(trail.audit.sink.counters.dropped).toBe(0);
    await trail.engine`INSERT INTO zt_audit.chains (chain_id, hash_version) SELECT unnest(${testChains}::text[]), 1 ON CONFLICT DO NOTHING`;
    const v = await trail.audit.verify();
    expect(v.broken).toEqual([]);
  });
});

describe("spool lines", () => {
  it("only well-typed rows are read back from a line", () => {
    const row = chainRows([operatorRecord("bob", "svc", "act")])[0] as AuditRow;
    expect(lineToRow(rowToLine(row))).toEqual(row);
    expect(lineToRow("not json")).toBeNull();
    expect(lineToRow("[1,2]")).toBeNull();
    expect(lineToRow(JSON.stringify({ ...row, seq: "7" }))).toBeNull();
    expect(lineToRow(JSON.stringify({ ...row, ts: 5 }))).toBeNull();
    expect(lineToRow(JSON.stringify({ ...row, operator_roles: ["a", 1] }))).toBeNull();
    expect(lineToRow(JSON.stringify({ ...row, latency_us: Infinity }))).toBeNull();
    const { hash: _h, ...noHash } = row;
    expect(lineToRow(JSON.stringify(noHash))).toBeNull();
  });

  it("a spool segment with a malformed line: the line is quarantined, the others replayed", async () => {
    await trail.audit.close();
    const rows = chainRows(Array.from({ length: 5 }, () => serviceRecord()), `replay/${randomUUID()}`);
    const bad = JSON.stringify({ ...rows[2], source_pod: { nested: true } });
    const lines = [rowToLine(rows[0] as AuditRow), rowToLine(rows[1] as AuditRow), bad, rowToLine(rows[3] as AuditRow), rowToLine(rows[4] as AuditRow)];
    await writeFile(join(trail.dir, "spool", "seg-0000000000001-000000.jsonl"), lines.join("\n") + "\n");
    await trail.openAgain();
    await settle(trail.audit);
    expect(trail.audit.sink.counters.rejected).toBe(1);
    expect(trail.audit.sink.counters.replayed).toBe(4);
    const quarantined = (await readFile(join(trail.dir, "spool", "rejected.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { reason: string; line: string });
    expect(quarantined).toEqual([{ at: expect.any(String), reason: "malformed spool line", line: bad }]);
    const got = await stored(rows.map((r) => r.decision_id));
    expect([...got.keys()].sort()).toEqual([rows[0], rows[1], rows[3], rows[4]].map((r) => (r as AuditRow).decision_id).sort());
  });
});
