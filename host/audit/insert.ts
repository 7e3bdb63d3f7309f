// Batch insert. A live batch (records never sent before) goes in as one binary COPY
// (copy-binary.ts encodes it): no text to parse on the server, and COPY writes the heap a page
// at a time (heap_multi_insert: one WAL record per page) and extends the table in bulk, which
// costs PostgreSQL about 15-19% less CPU per row than the INSERT below (docs/audit.md, "Throughput").
//
// Re-sent and replayed rows, and a live batch whose key is already stored (a sidecar
// re-sending, a batch whose commit reply was lost: the COPY fails as a whole with
// unique_violation), go through INSERT ... SELECT unnest(column arrays) ... ON CONFLICT DO
// NOTHING: 25 text parameters, each a PostgreSQL array literal holding one column of the
// batch, expanded server-side by unnest() in the select list (ProjectSet: no JSON, no
// tuplestore; one prepared statement for every batch size). Idempotency is unchanged. This
// text path is the reference the binary COPY is tested against (test/audit/copy-binary.test.ts).
import postgres, { type ReservedSql, type Sql } from "postgres";
import type { AuditRow, ChainDeclaration } from "./chain.js";
import { COPY_COLUMNS, copyBinary } from "./copy-binary.js";
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

/** The live path: the batch's rows in COPY's binary format, columns in table order. */
const COPY_SQL = `COPY ${SCHEMA}.decisions (${COPY_COLUMNS.join(", ")}) FROM STDIN (FORMAT binary)`;

/** The predecessor check of a pipelined batch: one primary-key probe, pruned to one partition. */
const PREDECESSOR_SQL = `SELECT 1 FROM ${SCHEMA}.decisions
  WHERE ts = $1::timestamptz AND decision_id = $2::uuid AND chain_id = $3::text AND seq = $4::bigint`;

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
 * before, so they are copied in first; either way a row whose key is already stored is not
 * inserted twice.
 */
export async function insertRows(sql: Sql, rows: readonly AuditRow[], fresh: boolean): Promise<InsertOutcome> {
  if (rows.length === 0) return { inserted: 0, duplicates: 0, conflicts: 0 };
  if (!fresh) return insertIdempotent(sql, rows.length, batchParameters(rows));
  const data = copyBinary(rows);
  return onOwnConnection(sql, async (conn) => {
    if (data !== null && (await copyOrTaken(conn, data))) return copied(sql, rows);
    return insertIdempotent(conn, rows.length, batchParameters(rows));
  });
}

/**
 * The last row each pool's most recent COPY stored, every row of it in decisions at its own
 * position. Batches take the pool's connection in turn, so a batch whose predecessor is this
 * row knows it is stored without asking: the probe's round trip, during which PostgreSQL
 * idles between two batches, is only made when that is not known (after a failure, a
 * fallback to INSERT, a new connection's first batch).
 */
const lastCopied = new WeakMap<Sql, string>();
const rowKey = (r: AuditRow): string => `${r.chain_id}\u0000${r.seq}\u0000${r.decision_id}\u0000${r.ts}`;

function copied(sql: Sql, rows: readonly AuditRow[]): InsertOutcome {
  lastCopied.set(sql, rowKey(rows[rows.length - 1]!));
  return { inserted: rows.length, duplicates: 0, conflicts: 0 };
}

/**
 * Fresh rows that follow `after` in the chain: inserted only if `after` is stored in
 * decisions. Null: it is not (its batch failed, or it went to duplicates), nothing was
 * inserted, and the batch must be sent again once its predecessor is settled.
 *
 * The writer sends the next batch while the previous one executes. Batches take the
 * connection in turn (see onOwnConnection), so when this one probes, its predecessor has
 * committed or failed: a batch never commits after its predecessor failed, and what is in
 * PostgreSQL stays a prefix of the chain.
 */
export async function insertRowsAfter(sql: Sql, rows: readonly AuditRow[], after: AuditRow): Promise<InsertOutcome | null> {
  if (rows.length === 0) return { inserted: 0, duplicates: 0, conflicts: 0 };
  const data = copyBinary(rows);
  return onOwnConnection(sql, async (conn) => {
    const known = lastCopied.get(sql) === rowKey(after);
    lastCopied.delete(sql);
    if (!known) {
      const found = await conn.unsafe(PREDECESSOR_SQL, [after.ts, after.decision_id, after.chain_id, after.seq], { prepare: true });
      if (found.length === 0) return null;
    }
    if (data !== null && (await copyOrTaken(conn, data))) return copied(sql, rows);
    return insertIdempotent(conn, rows.length, batchParameters(rows));
  });
}

/**
 * Runs `fn` on a connection reserved for it. Nothing else may be written to a connection
 * while a COPY streams (the driver refuses a pipelined query then: COPY_IN_PROGRESS); while
 * reserved, the pool's other queries (the writer's, its checkpointer's) wait their turn, and on
 * the writer's one-connection pool batches take turns. A connection that died meanwhile is not
 * handed back: the driver (3.4) has already put it among its closed connections, and releasing
 * it would put it back among the open ones, where the next query would be written to no socket.
 */
async function onOwnConnection<T>(sql: Sql, fn: (conn: ReservedSql) => Promise<T>): Promise<T> {
  const conn = await sql.reserve();
  let alive = true;
  try {
    return await fn(conn);
  } catch (e) {
    alive = !connectionLost(e);
    throw e;
  } finally {
    if (alive) conn.release();
  }
}

/** Not an error PostgreSQL reported on a session that goes on (ERROR): the connection is gone (or going: FATAL, PANIC). */
function connectionLost(e: unknown): boolean {
  if (!(e instanceof postgres.PostgresError)) return true;
  return e.severity === "FATAL" || e.severity === "PANIC";
}

/** Copies the batch in. True: stored; false: some key is taken and nothing was stored. Other failures throw. */
async function copyOrTaken(conn: ReservedSql, data: Buffer): Promise<boolean> {
  try {
    await copyIn(conn, data);
    return true;
  } catch (e) {
    if (isUniqueViolation(e)) return false;
    throw e;
  }
}

/**
 * One COPY FROM STDIN. The `postgres` driver (3.4) never settles the writable of a COPY the
 * server refuses, and drops the error (porsager/postgres#1173): it only hands the error to the
 * query's reject, which is ignored once the query has resolved to its stream. So the reject is
 * observed here, and whichever comes first, the server's error or the completed copy, settles
 * the call. test/audit/insert.test.ts holds the driver to this (a refused COPY rejects with
 * PostgreSQL's error and code, and the connection serves the next statement).
 */
function copyIn(conn: ReservedSql, data: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const query = conn.unsafe(COPY_SQL) as ReturnType<ReservedSql["unsafe"]> & { reject: (e: unknown) => void };
    const driverReject = query.reject;
    query.reject = (e: unknown): void => {
      reject(e);
      driverReject(e);
    };
    query.writable().then((stream) => {
      stream.once("error", reject);
      stream.once("finish", () => resolve());
      stream.end(data);
    }, reject);
  });
}

async function insertIdempotent(sql: Sql | ReservedSql, n: number, params: string[]): Promise<InsertOutcome> {
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
