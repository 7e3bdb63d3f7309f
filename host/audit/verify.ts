// `zt audit verify`: walks every chain in sequence order, recomputes each record's hash
// from its columns and checks the links. Gaps are accepted only where retention dropped a
// partition (recorded in retention_log, with the hash of the last dropped record before
// each surviving one in retention_anchors). What a hash chain cannot show: records cut
// from the *end* of a chain (docs/audit.md explains the limits).
import type { Sql } from "postgres";
import { genesisHash, linkHash, recordSelectList, rowToRecord, type StoredColumns } from "./chain.js";
import { SCHEMA } from "./migrations.js";

export interface BrokenLink {
  chain_id: string;
  seq: number;
  decision_id: string | null;
  timestamp: string | null;
  problem: string;
}

export interface VerifyReport {
  ok: boolean;
  chains: number;
  records: number;
  /** Gaps explained by retention (dropped partitions). */
  retention_gaps: number;
  /** The first broken link of each broken chain. */
  broken: BrokenLink[];
  /** The earliest (by timestamp) of `broken`, or null. */
  first_broken: BrokenLink | null;
  checked_at: string;
}

type Row = StoredColumns & { chain_id: string; seq: string; prev_hash: string; hash: string };

/** int8multirange text, e.g. `{[1,5),[7,9)}`, as half-open [lo, hi) pairs. */
function parseMultirange(text: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const m of text.matchAll(/\[(-?\d+),(-?\d+)\)/g)) out.push([Number(m[1]), Number(m[2])]);
  return out;
}

function covered(ranges: Array<[number, number]> | undefined, lo: number, hi: number): boolean {
  // Is every integer in [lo, hi] inside one of the (merged, per-partition) ranges?
  if (!ranges) return false;
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let next = lo;
  for (const [a, b] of sorted) {
    if (a > next) break;
    if (b > next) next = b;
    if (next > hi) return true;
  }
  return next > hi;
}

export async function verifyChains(sql: Sql): Promise<VerifyReport> {
  const dropped = new Map<string, Array<[number, number]>>();
  for (const r of await sql.unsafe<{ chain_id: string; seqs: string }[]>(`SELECT chain_id, seqs::text AS seqs FROM ${SCHEMA}.retention_log`)) {
    const list = dropped.get(r.chain_id) ?? [];
    list.push(...parseMultirange(r.seqs));
    dropped.set(r.chain_id, list);
  }
  const anchors = new Map<string, string>();
  for (const a of await sql.unsafe<{ chain_id: string; seq: string; hash: string }[]>(
    `SELECT chain_id, seq::text AS seq, encode(hash, 'hex') AS hash FROM ${SCHEMA}.retention_anchors`,
  )) {
    anchors.set(`${a.chain_id}\u0000${a.seq}`, a.hash);
  }

  const report: VerifyReport = { ok: true, chains: 0, records: 0, retention_gaps: 0, broken: [], first_broken: null, checked_at: new Date().toISOString() };
  const brokenChains = new Set<string>();
  const breakAt = (row: Row, problem: string): void => {
    if (brokenChains.has(row.chain_id)) return;
    brokenChains.add(row.chain_id);
    report.broken.push({
      chain_id: row.chain_id,
      seq: Number(row.seq),
      decision_id: row.decision_id,
      timestamp: (row.ts instanceof Date ? row.ts : new Date(row.ts)).toISOString(),
      problem,
    });
  };

  const cols = recordSelectList();
  const select = (table: string): string =>
    `SELECT ${cols}, chain_id, seq::text AS seq, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
       FROM ${SCHEMA}.${table} t ORDER BY t.chain_id, t.seq`;

  // Re-sent records keep their chain position in the (small) duplicates table: merged in.
  const dups = new Map<string, Row[]>();
  for (const d of await sql.unsafe<Row[]>(select("duplicates"))) {
    const list = dups.get(d.chain_id) ?? [];
    list.push(d);
    dups.set(d.chain_id, list);
  }

  let chain: string | null = null;
  let prevSeq = 0;
  let prevHash = "";
  let pending: Row[] = [];

  const check = (row: Row): void => {
    report.records++;
    const seq = Number(row.seq);
    const id = row.chain_id;
    let expectedPrev: string | null = prevHash;
    if (seq === prevSeq) {
      breakAt(row, `sequence number ${seq} appears twice`);
    } else if (seq > prevSeq + 1) {
      // Records missing before this one: only retention may have removed them.
      if (covered(dropped.get(id), prevSeq + 1, seq - 1)) {
        report.retention_gaps++;
        expectedPrev = anchors.get(`${id}\u0000${seq - 1}`) ?? null;
        if (expectedPrev === null) breakAt(row, `no retention anchor for dropped record ${seq - 1}`);
      } else {
        breakAt(row, prevSeq + 1 === seq - 1 ? `record ${prevSeq + 1} is missing` : `records ${prevSeq + 1}..${seq - 1} are missing`);
        expectedPrev = null;
      }
    }
    if (expectedPrev !== null && row.prev_hash !== expectedPrev) {
      breakAt(row, "prev_hash does not match the hash of the previous record");
    }
    const recomputed = linkHash(row.prev_hash, id, seq, rowToRecord(row));
    if (recomputed !== row.hash) breakAt(row, "record content does not match its hash (row modified)");
    prevSeq = seq;
    prevHash = row.hash;
  };
  const startChain = (id: string): void => {
    while (pending.length > 0) check(pending.shift() as Row);
    chain = id;
    report.chains++;
    prevSeq = 0;
    prevHash = genesisHash(id);
    pending = dups.get(id) ?? [];
    dups.delete(id);
  };

  const cursor = sql.unsafe<Row[]>(select("decisions")).cursor(2000);
  for await (const rows of cursor) {
    for (const row of rows) {
      if (row.chain_id !== chain) startChain(row.chain_id);
      while (pending.length > 0 && Number((pending[0] as Row).seq) < Number(row.seq)) check(pending.shift() as Row);
      check(row);
    }
  }
  for (const id of [...dups.keys()]) startChain(id);
  while (pending.length > 0) check(pending.shift() as Row);
  report.ok = report.broken.length === 0;
  report.first_broken = report.broken.reduce<BrokenLink | null>((a, b) => (a === null || (b.timestamp ?? "") < (a.timestamp ?? "") ? b : a), null);
  return report;
}
