// Batch insert: one statement per batch, the rows shipped column-wise as 25 text parameters,
// each a PostgreSQL array literal holding one column of the batch, and expanded server-side
// by unnest() in the select list. Set-returning functions in the select list run in lockstep
// (ProjectSet), so the server neither parses JSON nor materialises a tuplestore, and the
// statement text is the same for every batch size (one prepared statement). Against the
// json_to_recordset form this replaced, the server spends ~30% less CPU per row
// (docs/audit.md, "Throughput").
//
// A live batch holds records never sent before, so it goes in as a plain INSERT: the
// speculative insertion that ON CONFLICT needs costs ~15% of the server's time per row. When a
// row's key is already taken (a sidecar re-sending, a batch whose commit reply was lost) the
// plain INSERT fails as a whole with unique_violation and the batch is sent again with ON
// CONFLICT DO NOTHING, as replays of the spool always are: idempotency is unchanged.
import type { Sql } from "postgres";
import type { AuditRow, ChainDeclaration } from "./chain.js";
import { SCHEMA } from "./migrations.js";

type Kind = "text" | "number" | "bool" | "roles" | "hex";

interface Column {
  name: keyof AuditRow;
  /** Element type of the parameter's array. */
  type: string;
  kind: Kind;
}

// Table column order: the select list below doubles as a row source for the duplicates table.
const COLUMNS: readonly Column[] = [
  { name: "ts", type: "timestamptz", kind: "text" },
  { name: "decision_id", type: "uuid", kind: "text" },
  { name: "decision", type: "text", kind: "text" },
  { name: "source_spiffe_id", type: "text", kind: "text" },
  { name: "source_pod", type: "text", kind: "text" },
  { name: "source_node", type: "text", kind: "text" },
  { name: "dest_spiffe_id", type: "text", kind: "text" },
  { name: "dest_port", type: "integer", kind: "number" },
  { name: "operator_subject", type: "text", kind: "text" },
  // text[] per row cannot be an element of a one-dimensional array: each element is the
  // row's own array literal, cast per row (operator records only; null otherwise).
  { name: "operator_roles", type: "text", kind: "roles" },
  { name: "operator_mfa", type: "boolean", kind: "bool" },
  { name: "operator_incident", type: "text", kind: "text" },
  { name: "target_service", type: "text", kind: "text" },
  { name: "target_action", type: "text", kind: "text" },
  { name: "policy_matched", type: "text", kind: "text" },
  { name: "latency_us", type: "bigint", kind: "number" },
  { name: "enforced", type: "boolean", kind: "bool" },
  { name: "reason", type: "text", kind: "text" },
  { name: "policy_version", type: "text", kind: "text" },
  { name: "origin", type: "text", kind: "text" },
  { name: "caller", type: "text", kind: "text" },
  { name: "chain_id", type: "text", kind: "text" },
  { name: "seq", type: "bigint", kind: "number" },
  { name: "prev_hash", type: "text", kind: "hex" },
  { name: "hash", type: "text", kind: "hex" },
];

const COLUMN_LIST = COLUMNS.map((c) => c.name).join(", ");

/** `unnest($n::text::type[]) AS name, ...`: the batch as rows, typed like the table. */
const ROWS_SQL = COLUMNS.map((c, i) => {
  const p = `unnest($${i + 1}::text::${c.type}[])`;
  if (c.kind === "roles") return `${p}::text[] AS ${c.name}`;
  if (c.kind === "hex") return `decode(${p}, 'hex') AS ${c.name}`;
  return `${p} AS ${c.name}`;
}).join(",\n  ");

const INSERT_SQL = `INSERT INTO ${SCHEMA}.decisions (${COLUMN_LIST})\nSELECT\n  ${ROWS_SQL}`;
const INSERT_IDEMPOTENT_SQL = `${INSERT_SQL}\nON CONFLICT DO NOTHING`;

const P = COLUMNS.length;
/**
 * The writer sends the next batch while the previous one executes (pipelining on its one
 * connection). The next batch inserts only if the previous batch's last row is stored, so a
 * batch never commits after its predecessor failed: what is in PostgreSQL stays a prefix of
 * the chain. The probe is one primary-key lookup (pruned to one partition) per batch.
 */
const INSERT_AFTER_SQL = `${INSERT_SQL}
WHERE EXISTS (SELECT 1 FROM ${SCHEMA}.decisions p
               WHERE p.ts = $${P + 1}::timestamptz AND p.decision_id = $${P + 2}::uuid
                 AND p.chain_id = $${P + 3}::text AND p.seq = $${P + 4}::bigint)`;

/** Rows of the batch not stored in decisions at their own chain position: they go to duplicates. */
const DUPLICATES_SQL = `
INSERT INTO ${SCHEMA}.duplicates (${COLUMN_LIST})
SELECT r.* FROM (SELECT
  ${ROWS_SQL}) r
WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.decisions d
                   WHERE d.decision_id = r.decision_id AND d.ts = r.ts AND d.chain_id = r.chain_id AND d.seq = r.seq)
ON CONFLICT (chain_id, seq) DO NOTHING`;

/** Of those, the ones whose content differs from the stored record: two decisions with one id. */
const CONFLICTS_SQL = `
SELECT count(*)::int AS n
FROM (SELECT
  ${ROWS_SQL}) r
JOIN ${SCHEMA}.decisions d ON d.decision_id = r.decision_id AND d.ts = r.ts
WHERE (d.chain_id, d.seq) IS DISTINCT FROM (r.chain_id, r.seq)
  AND (d.decision, d.source_spiffe_id, d.dest_spiffe_id, d.dest_port, d.operator_subject,
       d.target_service, d.target_action, d.policy_matched, d.enforced, d.reason, d.origin)
      IS DISTINCT FROM
      (r.decision, r.source_spiffe_id, r.dest_spiffe_id, r.dest_port, r.operator_subject,
       r.target_service, r.target_action, r.policy_matched, r.enforced, r.reason, r.origin)`;

export interface InsertOutcome {
  /** Rows newly stored in decisions. */
  inserted: number;
  /** Rows whose key was taken, stored in duplicates (replays of rows already in place are neither). */
  duplicates: number;
  /** Of the duplicates, those whose content differs from the stored record holding the key. */
  conflicts: number;
}

/** An array-literal element: always quoted, so no value can be read as NULL, a delimiter or a nested array. */
function quote(v: string): string {
  if (v.indexOf('"') === -1 && v.indexOf("\\") === -1) return '"' + v + '"';
  return '"' + v.replace(/["\\]/g, "\\$&") + '"';
}

function element(kind: Kind, v: unknown): string {
  if (v === null) return "NULL";
  switch (kind) {
    case "text":
    case "hex":
      return quote(v as string);
    case "number":
      // A number prints without delimiters; anything else (a malformed spool line) stays inside its quotes.
      return typeof v === "number" ? String(v) : quote(String(v));
    case "bool":
      return v === true ? "t" : "f";
    case "roles": {
      const roles = v as readonly string[];
      let lit = "{";
      for (let i = 0; i < roles.length; i++) lit += (i === 0 ? "" : ",") + quote(roles[i] as string);
      return quote(lit + "}");
    }
  }
}

/** The batch column-wise: one array literal per column, in COLUMNS order. */
export function batchParameters(rows: readonly AuditRow[]): string[] {
  const out: string[] = new Array(COLUMNS.length);
  for (let c = 0; c < COLUMNS.length; c++) {
    const { name, kind } = COLUMNS[c] as Column;
    let lit = "{";
    for (let i = 0; i < rows.length; i++) {
      if (i > 0) lit += ",";
      lit += element(kind, (rows[i] as AuditRow)[name]);
    }
    out[c] = lit + "}";
  }
  return out;
}

function isUniqueViolation(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === "23505";
}

/**
 * Inserts one batch in one statement (one transaction). `fresh`: the rows were never sent
 * before, so a plain INSERT is tried first; either way a row whose key is already stored
 * is not inserted twice.
 */
export async function insertRows(sql: Sql, rows: readonly AuditRow[], fresh: boolean): Promise<InsertOutcome> {
  if (rows.length === 0) return { inserted: 0, duplicates: 0, conflicts: 0 };
  const params = batchParameters(rows);
  if (fresh) {
    try {
      const res = await sql.unsafe(INSERT_SQL, params, { prepare: true });
      return { inserted: res.count, duplicates: 0, conflicts: 0 };
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      // Some key is taken: nothing of the batch was stored; go the idempotent way.
    }
  }
  return insertIdempotent(sql, rows.length, params);
}

/**
 * Fresh rows that follow `after` in the chain: inserted only if `after` is stored in
 * decisions. Null: it is not (its batch failed, or it went to duplicates), nothing was
 * inserted, and the batch must be sent again once its predecessor is settled.
 */
export async function insertRowsAfter(sql: Sql, rows: readonly AuditRow[], after: AuditRow): Promise<InsertOutcome | null> {
  if (rows.length === 0) return { inserted: 0, duplicates: 0, conflicts: 0 };
  const params = batchParameters(rows);
  try {
    const res = await sql.unsafe(INSERT_AFTER_SQL, [...params, after.ts, after.decision_id, after.chain_id, after.seq], { prepare: true });
    // A plain INSERT stores every row or fails: no row means the predecessor check failed.
    return res.count === 0 ? null : { inserted: res.count, duplicates: 0, conflicts: 0 };
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    // The check passed (rows were being inserted), so the predecessor is committed.
    return insertIdempotent(sql, rows.length, params);
  }
}

async function insertIdempotent(sql: Sql, n: number, params: string[]): Promise<InsertOutcome> {
  const res = await sql.unsafe(INSERT_IDEMPOTENT_SQL, params, { prepare: true });
  const inserted = res.count;
  if (inserted === n) return { inserted, duplicates: 0, conflicts: 0 };
  // Fewer rows than sent: replays of rows already stored (nothing to do) or re-used keys.
  const dup = await sql.unsafe(DUPLICATES_SQL, params, { prepare: true });
  if (dup.count === 0) return { inserted, duplicates: 0, conflicts: 0 };
  const [c] = await sql.unsafe<{ n: number }[]>(CONFLICTS_SQL, params, { prepare: true });
  return { inserted, duplicates: dup.count, conflicts: c?.n ?? 0 };
}

/** Creates the partition holding the UTC day `day` (YYYY-MM-DD) if missing (SECURITY DEFINER function). */
export async function ensurePartition(sql: Sql, day: string): Promise<void> {
  await sql.unsafe(`SELECT ${SCHEMA}.ensure_partition($1::timestamptz)`, [`${day}T00:00:00Z`]);
}

/** PostgreSQL found no partition for a row (SQLSTATE 23514 from the partition routing, not a CHECK of the table). */
export function isMissingPartition(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return err?.code === "23514" && typeof err.message === "string" && err.message.startsWith("no partition of relation");
}

/** Stores chain declarations (idempotent): a chain is declared before any of its records is inserted. */
export async function declareChains(sql: Sql, declarations: readonly ChainDeclaration[]): Promise<void> {
  for (const d of declarations) {
    const p = d.predecessor;
    await sql.unsafe(
      `INSERT INTO ${SCHEMA}.chains (chain_id, writer_id, started_at, hash_version, pred_chain_id, pred_seq, pred_hash)
       VALUES ($1, $2, $3::timestamptz, 2, $4, $5::bigint, decode($6, 'hex')) ON CONFLICT (chain_id) DO NOTHING`,
      [d.chain_id, d.writer_id, d.started_at, p?.chain_id ?? null, p === null ? null : String(p.seq), p?.hash ?? null],
    );
  }
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity violation) are about the rows, not the server: retrying will not help. */
export function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^2[23][0-9A-Z]{3}$/.test(code);
}
