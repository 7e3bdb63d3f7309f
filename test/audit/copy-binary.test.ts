// The live batch's binary COPY against its reference, the text-array INSERT: generated rows
// (any text, operator and service records, empty and non-empty role lists, NULLs) stored
// both ways read back identically. Values the encoder must not judge go the text way, and a
// COPY PostgreSQL refuses rejects with PostgreSQL's own error, leaving the connection usable.
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AuditRow } from "../../host/audit/chain.js";
import { COPY_COLUMNS, copyBinary } from "../../host/audit/copy-binary.js";
import { ensurePartition, insertRows, isDataError, isMissingPartition } from "../../host/audit/insert.js";
import { chainedRows, serviceRecord, trailForFile } from "./helpers.js";
import { awkwardRecords } from "./record-arbitraries.js";

const trail = trailForFile("copy-binary");

/** Every stored column of a chain's rows, in order, as PostgreSQL prints them (decision ids aside). */
async function storedText(chainId: string): Promise<string[][]> {
  const cols = COPY_COLUMNS.filter((c) => c !== "decision_id" && c !== "chain_id").map((c) => `${c}::text`);
  const rows = await trail.engine.unsafe<Record<string, string | null>[]>(
    `SELECT ${cols.join(", ")} FROM zt_audit.decisions WHERE chain_id = $1 ORDER BY seq`,
    [chainId],
  );
  return rows.map((r) => Object.values(r).map((v) => (v === null ? "<NULL>" : v)));
}

const NASTY = ['"', "\\", '\\"', "{", "}", "{a,b}", ",", " padded ", "NULL", "null", "\\N", "''", "a\nb\tc\r", "\u00e9\u0301", "\u{1F510}", "\\x00ff", "\"{}\""];

describe("binary COPY of a live batch", () => {
  it("stores every generated row exactly as the text-array INSERT does", async () => {
    const now = Date.now();
    const arb = awkwardRecords({ nasty: NASTY, days: 3, latency: fc.oneof(fc.nat(5_000_000), fc.constant(Number.MAX_SAFE_INTEGER)), port: true });
    for (let day = 0; day < 4; day++) await ensurePartition(trail.engine, new Date(now - day * 86_400_000).toISOString().slice(0, 10));
    await fc.assert(
      fc.asyncProperty(fc.array(arb, { minLength: 1, maxLength: 40 }), async (records) => {
        const copied = `copy/${randomUUID()}`;
        const reference = `reference/${randomUUID()}`;
        // The same records under other ids: both chains hold the same content, keys apart.
        const twins = records.map((r) => ({ ...r, decision_id: randomUUID() }));
        const viaCopy = chainedRows(records, copied);
        expect(copyBinary(viaCopy)).not.toBeNull();
        expect(await insertRows(trail.engine, viaCopy, true)).toEqual({ inserted: records.length, duplicates: 0, conflicts: 0 });
        // fresh = false: the text-array INSERT (the reference path).
        expect(await insertRows(trail.engine, chainedRows(twins, reference), false)).toEqual({ inserted: records.length, duplicates: 0, conflicts: 0 });
        const [a, b] = [await storedText(copied), await storedText(reference)];
        // The hashes differ with the decision ids; everything else is the same value.
        const strip = (rows: string[][]): string[][] => rows.map((r) => r.slice(0, -2));
        expect(strip(a)).toEqual(strip(b));
        const ids = await trail.engine<{ id: string }[]>`SELECT decision_id::text AS id FROM zt_audit.decisions WHERE chain_id = ${copied} ORDER BY seq`;
        expect(ids.map((r) => r.id)).toEqual(viaCopy.map((r) => r.decision_id));
        const hashes = await trail.engine<{ prev: string; hash: string }[]>`
          SELECT encode(prev_hash, 'hex') AS prev, encode(hash, 'hex') AS hash FROM zt_audit.decisions WHERE chain_id = ${copied} ORDER BY seq`;
        expect(hashes).toEqual(viaCopy.map((r) => ({ prev: r.prev_hash, hash: r.hash })));
      }),
      { numRuns: 25, seed: 18 },
    );
  });

  it("leaves to the text path what only PostgreSQL may judge", () => {
    const [row] = chainedRows([serviceRecord()], `x/${randomUUID()}`) as [AuditRow];
    expect(copyBinary([row])).not.toBeNull();
    // A day that does not exist (Date would roll it over to March), a timestamp in another form,
    // an id in a form uuid_in also reads, hashes that are not hex, numbers that are not integers.
    const odd: Partial<AuditRow>[] = [
      { ts: "2026-02-30T10:00:00.000Z" },
      { ts: "2026-02-20 10:00:00+00" },
      { decision_id: `{${row.decision_id}}` },
      { decision_id: row.decision_id.replace(/-/g, "") },
      { hash: "zz" + row.hash.slice(2) },
      { prev_hash: row.prev_hash.slice(1) },
      { latency_us: 1.5 },
      { seq: 2 ** 60 },
      { dest_port: 2 ** 31 },
    ];
    for (const o of odd) expect(copyBinary([{ ...row, ...o } as AuditRow])).toBeNull();
  });

  it("a COPY PostgreSQL refuses rejects with its error, and the connection serves the next statement", async () => {
    // No partition for the day: the writer recognises this and creates it again.
    const [far] = chainedRows([serviceRecord()], `old/${randomUUID()}`) as [AuditRow];
    const missing = await insertRows(trail.engine, [{ ...far, ts: "2001-01-01T00:00:00.000Z" }], true).catch((e: unknown) => e);
    expect(isMissingPartition(missing)).toBe(true);
    // Text PostgreSQL cannot hold (a NUL character): a data error, the writer isolates the rows.
    const [nul] = chainedRows([serviceRecord()], `nul/${randomUUID()}`) as [AuditRow];
    const refused = await insertRows(trail.engine, [{ ...nul, reason: "a\u0000b" }], true).catch((e: unknown) => e);
    expect(isDataError(refused)).toBe(true);
    const [ok] = await trail.engine<{ n: number }[]>`SELECT 1 AS n`;
    expect(ok?.n).toBe(1);
    const fine = chainedRows([serviceRecord(), serviceRecord()], `after/${randomUUID()}`);
    expect(await insertRows(trail.engine, fine, true)).toEqual({ inserted: 2, duplicates: 0, conflicts: 0 });
  });
});
