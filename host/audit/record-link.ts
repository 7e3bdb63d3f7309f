// One decision with its place in its hash chain, and whether that place checks out: the
// record's hash recomputed from its columns, its link to the previous record (or the chain's
// genesis), and the next record's link to it. `zt audit verify` walks whole chains; this
// answers the console's question about a single record without walking anything.
import type { Sql } from "postgres";
import { genesisHash, linkHash, recordSelectList, rowToRecord, type StoredColumns } from "./chain.js";
import { SCHEMA } from "./migrations.js";
import type { AuditRecord } from "./record.js";

export interface RecordLink {
  record: AuditRecord;
  chain_id: string;
  seq: number;
  /** Hex sha256 of the previous record (or the chain's genesis, for seq 1). */
  prev_hash: string;
  hash: string;
  verification: LinkVerification;
}

export interface LinkVerification {
  /** The stored hash equals the hash recomputed from the stored columns. */
  content: boolean;
  /** prev_hash equals the previous record's hash (seq 1: the genesis); null when the previous record is gone (retention). */
  previous: boolean | null;
  /** The next record's prev_hash equals this hash; null when this is the chain's head so far. */
  next: boolean | null;
  /** The first problem found, in words; null when every check that could run passed. */
  problem: string | null;
}

type Row = StoredColumns & { chain_id: string; seq: string; prev_hash: string; hash: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The record `decisionId`, or null when there is none. `timestamp` (the record's own, as the
 * audit API returns it) lets PostgreSQL use the primary key (ts, decision_id); without it the
 * lookup scans the trail.
 */
export async function findRecordLink(sql: Sql, decisionId: string, timestamp: Date | null = null): Promise<RecordLink | null> {
  if (!UUID.test(decisionId)) return null;
  const cols = `${recordSelectList()}, chain_id, seq::text AS seq, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash`;
  const rows =
    timestamp === null
      ? await sql.unsafe<Row[]>(`SELECT ${cols} FROM ${SCHEMA}.decisions WHERE decision_id = $1::uuid LIMIT 1`, [decisionId])
      : await sql.unsafe<Row[]>(`SELECT ${cols} FROM ${SCHEMA}.decisions WHERE ts = $1::timestamptz AND decision_id = $2::uuid LIMIT 1`, [
          timestamp.toISOString(),
          decisionId,
        ]);
  const row = rows[0];
  if (!row) return null;
  const seq = Number(row.seq);
  const record = rowToRecord(row);
  const neighbours = await sql.unsafe<{ seq: string; prev_hash: string; hash: string }[]>(
    // Re-sent records keep their chain position in the duplicates table (see verify.ts).
    `SELECT seq::text AS seq, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
       FROM ${SCHEMA}.decisions WHERE chain_id = $1 AND seq IN ($2::bigint, $3::bigint)
     UNION ALL
     SELECT seq::text, encode(prev_hash, 'hex'), encode(hash, 'hex')
       FROM ${SCHEMA}.duplicates WHERE chain_id = $1 AND seq IN ($2::bigint, $3::bigint)`,
    [row.chain_id, String(seq - 1), String(seq + 1)],
  );
  const before = neighbours.find((n) => Number(n.seq) === seq - 1);
  const after = neighbours.find((n) => Number(n.seq) === seq + 1);

  const content = linkHash(row.prev_hash, row.chain_id, seq, record) === row.hash;
  const expectedPrev = seq === 1 ? genesisHash(row.chain_id) : (before?.hash ?? null);
  const previous = expectedPrev === null ? null : expectedPrev === row.prev_hash;
  const next = after === undefined ? null : after.prev_hash === row.hash;
  let problem: string | null = null;
  if (!content) problem = "the record's columns do not match its hash (the row was modified)";
  else if (previous === false) problem = seq === 1 ? "prev_hash is not the chain's genesis" : `prev_hash does not match record ${seq - 1}'s hash`;
  else if (next === false) problem = `record ${seq + 1} does not link to this record's hash`;
  return { record, chain_id: row.chain_id, seq, prev_hash: row.prev_hash, hash: row.hash, verification: { content, previous, next, problem } };
}
