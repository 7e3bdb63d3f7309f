// `zt audit verify`: walks every chain in sequence order and checks, per record, that it
// links to the one before (the first to its chain's declared genesis), that its hash covers
// every stored column, and, given signed checkpoints, that every anchored link is there with
// its signed hash, that nothing lies beyond a closed chain's end and that no chain is missing
// or undeclared. Gaps are accepted only where retention dropped a partition, and only when
// the claim agrees with the partition's dates and the records around the gap.
import type { Sql } from "postgres";
import {
  canonicalJson,
  declaredGenesis,
  genesisHash,
  linkHash,
  recordSelectList,
  rowToRecord,
  uncoveredColumn,
  RECORD_COLUMNS,
  type ChainDeclaration,
  type VerifiedColumns,
} from "./chain.js";
import type { Anchor, CheckpointEvidence } from "./checkpoint-evidence.js";
import { DEFAULT_RETENTION_DAYS } from "./config.js";
import { SCHEMA } from "./migrations.js";
import { covered, implausibleGap, parseMultirange, writtenNoEarlierThan, type RetentionClaim } from "./retention-claims.js";

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
  /** Problems not tied to one chain: the tables' columns, the checkpoints themselves. */
  problems: string[];
  /** What the checkpoints covered (null: verified without checkpoints). */
  checkpoints: { writers: number; checkpoints: number; latest: Record<string, string> } | null;
  checked_at: string;
}

export interface VerifyOptions {
  /** Folded, checked checkpoints (foldCheckpoints); without them truncation and forged chains cannot be seen. */
  checkpoints?: CheckpointEvidence | null;
  /** The retention period retention claims are checked against (default 365 days). */
  retentionDays?: number;
  now?: Date;
}

type Row = VerifiedColumns & { chain_id: string; seq: string; prev_hash: string; hash: string };

/** A chain as zt_audit.chains declares it. */
type Declared = { version: 2; declaration: ChainDeclaration } | { version: 1 };

/** A link some evidence says must exist: an anchor in a checkpoint, or a successor chain's predecessor. */
interface Expectation extends Anchor {
  kind: "checkpoint" | "predecessor";
}

const TABLE_COLUMNS: Record<string, readonly string[]> = {
  decisions: [...RECORD_COLUMNS, "chain_id", "seq", "prev_hash", "hash"],
  duplicates: [...RECORD_COLUMNS, "chain_id", "seq", "prev_hash", "hash"],
  chains: ["chain_id", "writer_id", "started_at", "hash_version", "pred_chain_id", "pred_seq", "pred_hash"],
};

/** When a chain began, from its declaration or (older chains) the stamp in its id. */
function chainStart(id: string, d: Declared | undefined): number | null {
  if (d?.version === 2) return Date.parse(d.declaration.started_at);
  const m = /\/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]+$/.exec(id);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) : null;
}

async function loadDeclarations(sql: Sql, problems: string[]): Promise<Map<string, Declared>> {
  const out = new Map<string, Declared>();
  const rows = await sql.unsafe<
    { chain_id: string; writer_id: string | null; started_us: string | null; hash_version: number; pred_chain_id: string | null; pred_seq: string | null; pred_hash: string | null }[]
  >(
    `SELECT chain_id, writer_id, ((extract(epoch from started_at) * 1000000)::bigint)::text AS started_us, hash_version,
            pred_chain_id, pred_seq::text AS pred_seq, encode(pred_hash, 'hex') AS pred_hash
       FROM ${SCHEMA}.chains`,
  );
  for (const r of rows) {
    if (r.hash_version === 1) {
      if (r.writer_id !== null || r.started_us !== null || r.pred_chain_id !== null) problems.push(`chain ${r.chain_id}: declared as written before declarations (hash_version 1) but carries declaration columns`);
      out.set(r.chain_id, { version: 1 });
      continue;
    }
    const us = r.started_us ?? "";
    if (!/000$/.test(us)) problems.push(`chain ${r.chain_id}: started_at has sub-millisecond digits (the declaration was modified)`);
    out.set(r.chain_id, {
      version: 2,
      declaration: {
        chain_id: r.chain_id,
        writer_id: r.writer_id ?? "",
        started_at: new Date(Number(us) / 1000).toISOString(),
        hash_version: 2,
        predecessor: r.pred_chain_id === null ? null : { chain_id: r.pred_chain_id, seq: Number(r.pred_seq), hash: r.pred_hash ?? "" },
      },
    });
  }
  return out;
}

async function checkColumns(sql: Sql, problems: string[]): Promise<void> {
  const rows = await sql.unsafe<{ rel: string; col: string }[]>(
    `SELECT c.relname::text AS rel, a.attname::text AS col
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped`,
    [SCHEMA, `{${Object.keys(TABLE_COLUMNS).join(",")}}`],
  );
  for (const [table, expected] of Object.entries(TABLE_COLUMNS)) {
    const have = rows.filter((r) => r.rel === table).map((r) => r.col);
    const extra = have.filter((c) => !expected.includes(c));
    const missing = expected.filter((c) => !have.includes(c));
    if (extra.length > 0) problems.push(`table ${SCHEMA}.${table} has columns verify does not cover: ${extra.join(", ")}`);
    if (missing.length > 0) problems.push(`table ${SCHEMA}.${table} lacks columns: ${missing.join(", ")}`);
  }
}

export async function verifyChains(sql: Sql, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const now = opts.now ?? new Date();
  const retentionDays = opts.retentionDays ?? DEFAULT_RETENTION_DAYS;
  const ev = opts.checkpoints ?? null;
  const report: VerifyReport = {
    ok: true,
    chains: 0,
    records: 0,
    retention_gaps: 0,
    broken: [],
    first_broken: null,
    problems: [...(ev?.problems ?? [])],
    checkpoints: ev ? { writers: ev.writers, checkpoints: ev.checkpoints, latest: ev.latest } : null,
    checked_at: now.toISOString(),
  };

  await checkColumns(sql, report.problems);
  const declared = await loadDeclarations(sql, report.problems);
  const claims = new Map<string, RetentionClaim[]>();
  for (const r of await sql.unsafe<{ chain_id: string; partition_name: string; seqs: string }[]>(
    `SELECT chain_id, partition_name, seqs::text AS seqs FROM ${SCHEMA}.retention_log`,
  )) {
    const list = claims.get(r.chain_id) ?? [];
    list.push({ partition: r.partition_name, ranges: parseMultirange(r.seqs) });
    claims.set(r.chain_id, list);
  }
  const anchors = new Map<string, string>();
  for (const a of await sql.unsafe<{ chain_id: string; seq: string; hash: string }[]>(
    `SELECT chain_id, seq::text AS seq, encode(hash, 'hex') AS hash FROM ${SCHEMA}.retention_anchors`,
  )) {
    anchors.set(`${a.chain_id}\u0000${a.seq}`, a.hash);
  }

  // Every link some evidence says must exist, per chain.
  const expected = new Map<string, Map<number, Expectation>>();
  const expect = (chain: string, seq: number, e: Expectation): void => {
    const m = expected.get(chain) ?? new Map<number, Expectation>();
    expected.set(chain, m);
    if (!m.has(seq)) m.set(seq, e);
  };
  for (const [id, c] of ev?.chains ?? []) for (const [seq, a] of c.anchors) expect(id, seq, { ...a, kind: "checkpoint" });
  // A successor chain's declaration names its predecessor's head; two chains continuing one chain is a fork.
  const successors = new Map<string, string[]>();
  const addSuccessor = (d: ChainDeclaration): void => {
    const p = d.predecessor;
    if (!p) return;
    expect(p.chain_id, p.seq, { hash: p.hash, where: `the declaration of chain ${d.chain_id}`, kind: "predecessor" });
    const list = successors.get(p.chain_id) ?? [];
    if (!list.includes(d.chain_id)) list.push(d.chain_id);
    successors.set(p.chain_id, list);
  };
  for (const d of declared.values()) if (d.version === 2) addSuccessor(d.declaration);
  for (const c of ev?.chains.values() ?? []) addSuccessor(c.declaration);

  const brokenChains = new Set<string>();
  const breakAt = (chainId: string, seq: number, row: Row | null, problem: string): void => {
    if (brokenChains.has(chainId)) return;
    brokenChains.add(chainId);
    report.broken.push({
      chain_id: chainId,
      seq,
      decision_id: row?.decision_id ?? null,
      timestamp: row ? (row.ts instanceof Date ? row.ts : new Date(row.ts)).toISOString() : null,
      problem,
    });
  };
  for (const [pred, list] of successors) {
    if (list.length < 2) continue;
    // The one a checkpoint declared is the writer's; without checkpoints, none can be told apart.
    for (const id of list) {
      if (ev?.chains.has(id) && ev.chains.get(id)?.declaration.predecessor?.chain_id === pred) continue;
      breakAt(id, 1, null, `chain claims to continue chain ${pred}, which ${list.filter((x) => x !== id).join(", ")} also continues (forged chain?)`);
    }
  }

  const genesisOf = (id: string): string | null => {
    const d = declared.get(id);
    if (!d) return null;
    return d.version === 1 ? genesisHash(id) : declaredGenesis(d.declaration);
  };

  // ---- per chain ------------------------------------------------------------------------
  let chain: string | null = null;
  let prevSeq = 0;
  let prevHash = "";
  let prevTs: number | null = null;
  let pending: Row[] = [];
  const visited = new Set<string>();

  const retentionProblem = (id: string, lo: number, hi: number): string | null => {
    const written =
      prevSeq > 0 && prevTs !== null
        ? { ms: writtenNoEarlierThan(prevTs), what: `record ${prevSeq} (${new Date(prevTs).toISOString()})` }
        : ((start) => (start === null ? null : { ms: start, what: `the chain's start (${new Date(start).toISOString()})` }))(chainStart(id, declared.get(id)));
    return implausibleGap(lo, hi, { claims: claims.get(id) ?? [], retentionDays, nowMs: now.getTime(), writtenAfter: written });
  };

  const check = (row: Row): void => {
    report.records++;
    const seq = Number(row.seq);
    const id = row.chain_id;
    const exp = expected.get(id);
    const closed = ev?.chains.get(id)?.closed ?? null;
    if (closed && seq > closed.seq) {
      breakAt(id, seq, row, `record ${seq} lies beyond the chain's end (record ${closed.seq}, closed in checkpoint ${closed.where}): forged tail`);
    }
    let expectedPrev: string | null = prevHash;
    if (seq === prevSeq) {
      breakAt(id, seq, row, `sequence number ${seq} appears twice`);
    } else if (seq > prevSeq + 1) {
      const lo = prevSeq + 1;
      const hi = seq - 1;
      if (covered(claims.get(id), lo, hi)) {
        const bad = retentionProblem(id, lo, hi);
        if (bad) breakAt(id, seq, row, bad);
        report.retention_gaps++;
        for (const s of [...(exp?.keys() ?? [])]) if (s >= lo && s <= hi) exp?.delete(s);
        expectedPrev = anchors.get(`${id}\u0000${hi}`) ?? null;
        if (expectedPrev === null) breakAt(id, seq, row, `no retention anchor for dropped record ${hi}`);
      } else {
        breakAt(id, seq, row, lo === hi ? `record ${lo} is missing` : `records ${lo}..${hi} are missing`);
        expectedPrev = null;
      }
    }
    if (seq === 1) {
      expectedPrev = genesisOf(id);
      if (expectedPrev === null) breakAt(id, seq, row, "the chain is not declared (no row in zt_audit.chains)");
    }
    if (expectedPrev !== null && row.prev_hash !== expectedPrev) {
      breakAt(id, seq, row, seq === 1 ? "prev_hash does not match the chain's declared genesis" : "prev_hash does not match the hash of the previous record");
    }
    if (linkHash(row.prev_hash, id, seq, rowToRecord(row)) !== row.hash) breakAt(id, seq, row, "record content does not match its hash (row modified)");
    const col = uncoveredColumn(row);
    if (col !== null) breakAt(id, seq, row, `column ${col} holds a value its record does not carry, outside the hash (row modified)`);
    const e = exp?.get(seq);
    if (e) {
      if (e.hash !== row.hash) {
        breakAt(id, seq, row, e.kind === "checkpoint" ? `record ${seq} differs from the hash signed in checkpoint ${e.where} (chain rewritten)` : `record ${seq} differs from the head named by ${e.where}`);
      }
      exp?.delete(seq);
    }
    prevSeq = seq;
    prevHash = row.hash;
    prevTs = (row.ts instanceof Date ? row.ts : new Date(row.ts)).getTime();
  };

  /** What evidence expects of the chain and its rows did not show: cut from the end, or a chain missing whole. */
  const finishChain = (id: string): void => {
    const exp = expected.get(id);
    if (!exp) return;
    for (const [seq, e] of [...exp].sort((a, b) => a[0] - b[0])) {
      if (seq === 0) {
        const g = genesisOf(id);
        if (g !== null && g !== e.hash) breakAt(id, 0, null, `the chain's genesis differs from the one named by ${e.kind === "checkpoint" ? "checkpoint " : ""}${e.where}`);
        continue;
      }
      if (covered(claims.get(id), seq, seq)) {
        const bad = retentionProblem(id, seq, seq);
        if (bad) breakAt(id, seq, null, bad);
        continue;
      }
      const what = e.kind === "checkpoint" ? `signed in checkpoint ${e.where}` : `named by ${e.where}`;
      breakAt(id, seq, null, visited.has(id) ? `record ${seq} ${what} is missing (records cut from the chain's end)` : `the chain is missing: record ${seq} ${what} is not in the trail`);
    }
    expected.delete(id);
  };

  const endChain = (): void => {
    while (pending.length > 0) check(pending.shift() as Row);
    if (chain !== null) finishChain(chain);
  };

  const startChain = (id: string, first: Row | null): void => {
    endChain();
    chain = id;
    visited.add(id);
    report.chains++;
    prevSeq = 0;
    prevHash = genesisOf(id) ?? "";
    prevTs = null;
    pending = dups.get(id) ?? [];
    dups.delete(id);
    if (ev && !ev.chains.has(id)) breakAt(id, Number(first?.seq ?? pending[0]?.seq ?? 0), first ?? pending[0] ?? null, "the chain is not declared by any checkpoint (forged chain?)");
    const signed = ev?.chains.get(id);
    const d = declared.get(id);
    if (signed && d?.version === 2 && canonicalJson(d.declaration) !== canonicalJson(signed.declaration)) {
      breakAt(id, 0, null, `the chain's declaration in zt_audit.chains differs from the one signed in checkpoint ${signed.declaredIn}`);
    }
  };

  const cols = recordSelectList();
  const select = (table: string): string =>
    `SELECT ${cols}, ((extract(epoch from ts) * 1000000)::bigint)::text AS ts_us, chain_id, seq::text AS seq,
            encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
       FROM ${SCHEMA}.${table} t ORDER BY t.chain_id, t.seq`;

  // Re-sent records keep their chain position in the (small) duplicates table: merged in.
  const dups = new Map<string, Row[]>();
  for (const d of await sql.unsafe<Row[]>(select("duplicates"))) {
    const list = dups.get(d.chain_id) ?? [];
    list.push(d);
    dups.set(d.chain_id, list);
  }

  const cursor = sql.unsafe<Row[]>(select("decisions")).cursor(2000);
  for await (const rows of cursor) {
    for (const row of rows) {
      if (row.chain_id !== chain) startChain(row.chain_id, row);
      while (pending.length > 0 && Number((pending[0] as Row).seq) < Number(row.seq)) check(pending.shift() as Row);
      check(row);
    }
  }
  for (const id of [...dups.keys()]) startChain(id, null);
  endChain();
  chain = null;
  // Chains evidence expects that have no rows at all.
  for (const id of [...expected.keys()]) finishChain(id);

  report.ok = report.broken.length === 0 && report.problems.length === 0;
  report.first_broken = report.broken.reduce<BrokenLink | null>((a, b) => (a === null || (b.timestamp ?? "") < (a.timestamp ?? "") ? b : a), null);
  return report;
}
