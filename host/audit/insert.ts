// Batch insert: one statement per batch, the rows shipped as a single JSON array parameter
// (the spool lines joined with commas, so neither the live path nor the replay re-encodes
// anything) and expanded server-side by json_to_recordset. ON CONFLICT DO NOTHING makes a
// replay of rows PostgreSQL already has (commit outcome unknown, spool overlap) harmless.
import type { Sql } from "postgres";
import { SCHEMA } from "./migrations.js";

const COLUMNS_SQL = `
  ts timestamptz, decision_id uuid, decision text,
  source_spiffe_id text, source_pod text, source_node text,
  dest_spiffe_id text, dest_port integer,
  operator_subject text, operator_roles text[], operator_mfa boolean, operator_incident text,
  target_service text, target_action text,
  policy_matched text, latency_us bigint, enforced boolean, reason text, policy_version text,
  origin text, caller text, chain_id text, seq bigint, prev_hash text, hash text`;

const INSERT_SQL = `
INSERT INTO ${SCHEMA}.decisions (
  ts, decision_id, decision, source_spiffe_id, source_pod, source_node, dest_spiffe_id, dest_port,
  operator_subject, operator_roles, operator_mfa, operator_incident, target_service, target_action,
  policy_matched, latency_us, enforced, reason, policy_version, origin, caller,
  chain_id, seq, prev_hash, hash)
SELECT
  ts, decision_id, decision, source_spiffe_id, source_pod, source_node, dest_spiffe_id, dest_port,
  operator_subject, operator_roles, operator_mfa, operator_incident, target_service, target_action,
  policy_matched, latency_us, enforced, reason, policy_version, origin, caller,
  chain_id, seq, decode(prev_hash, 'hex'), decode(hash, 'hex')
FROM json_to_recordset($1::text::json) AS r(${COLUMNS_SQL})
ON CONFLICT DO NOTHING`;

/** Rows of the batch not stored in decisions at their own chain position: they go to duplicates. */
const DUPLICATES_SQL = `
INSERT INTO ${SCHEMA}.duplicates (
  ts, decision_id, decision, source_spiffe_id, source_pod, source_node, dest_spiffe_id, dest_port,
  operator_subject, operator_roles, operator_mfa, operator_incident, target_service, target_action,
  policy_matched, latency_us, enforced, reason, policy_version, origin, caller,
  chain_id, seq, prev_hash, hash)
SELECT
  ts, decision_id, decision, source_spiffe_id, source_pod, source_node, dest_spiffe_id, dest_port,
  operator_subject, operator_roles, operator_mfa, operator_incident, target_service, target_action,
  policy_matched, latency_us, enforced, reason, policy_version, origin, caller,
  chain_id, seq, decode(prev_hash, 'hex'), decode(hash, 'hex')
FROM json_to_recordset($1::text::json) AS r(${COLUMNS_SQL})
WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.decisions d
                   WHERE d.decision_id = r.decision_id AND d.ts = r.ts AND d.chain_id = r.chain_id AND d.seq = r.seq)
ON CONFLICT (chain_id, seq) DO NOTHING`;

/** Of those, the ones whose content differs from the stored record: two decisions with one id. */
const CONFLICTS_SQL = `
SELECT count(*)::int AS n
FROM json_to_recordset($1::text::json) AS r(${COLUMNS_SQL})
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
  /** Of the duplicates, those whose content differs from the record holding the key. */
  conflicts: number;
}

function jsonArray(lines: readonly string[]): string {
  return "[" + lines.join(",") + "]";
}

export async function insertLines(sql: Sql, lines: readonly string[]): Promise<InsertOutcome> {
  const payload = jsonArray(lines);
  const res = await sql.unsafe(INSERT_SQL, [payload]);
  const inserted = res.count;
  if (inserted === lines.length) return { inserted, duplicates: 0, conflicts: 0 };
  // Fewer rows than sent: replays of rows already stored (nothing to do) or re-used keys.
  const dup = await sql.unsafe(DUPLICATES_SQL, [payload]);
  if (dup.count === 0) return { inserted, duplicates: 0, conflicts: 0 };
  const [c] = await sql.unsafe<{ n: number }[]>(CONFLICTS_SQL, [payload]);
  return { inserted, duplicates: dup.count, conflicts: c?.n ?? 0 };
}

/** Creates the monthly partition holding `monthStart` (YYYY-MM) if missing (SECURITY DEFINER function). */
export async function ensurePartition(sql: Sql, month: string): Promise<void> {
  await sql.unsafe(`SELECT ${SCHEMA}.ensure_partition($1::timestamptz)`, [`${month}-01T00:00:00Z`]);
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity violation) are about the rows, not the server: retrying will not help. */
export function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^2[23][0-9A-Z]{3}$/.test(code);
}
