// Retention and the graph's roll-up: run at start-up and hourly by the engine, as the
// maintenance role (which can create partitions, drop expired ones and roll up the graph
// through the SECURITY DEFINER functions, and nothing else). Partitions for today and the next
// two days (UTC) are created ahead of time so the writer's on-demand creation is the exception.
import type { Sql } from "postgres";
import { SCHEMA } from "./migrations.js";

export interface MaintenanceReport {
  /** Partitions ensured (existing or created). */
  partitions: string[];
  dropped: Array<{ partition: string; rows: number }>;
  /** Hours of the service graph rolled up (or redone after a late record) by this run. */
  rolledUpHours?: number;
}

/** Hours one call of roll_up_graph rolls up: a week, one short transaction of its own. */
export const ROLLUP_HOURS_PER_CALL = 168;

/**
 * Rolls up the service graph (migration 6's roll_up_graph) until no hour is left: the hours
 * that ended more than LATE_AFTER ago and are not rolled up yet, and the hours late records
 * marked. Each call is its own transaction in READ COMMITTED (the function waits for the
 * transactions open when it starts, then reads what they stored). Returns the hours done.
 */
export async function runGraphRollup(sql: Sql): Promise<number> {
  let total = 0;
  for (;;) {
    const [r] = await sql.unsafe<{ n: number }[]>(`SELECT ${SCHEMA}.roll_up_graph($1::integer) AS n`, [ROLLUP_HOURS_PER_CALL]);
    const n = (r as { n: number }).n;
    total += n;
    if (n < ROLLUP_HOURS_PER_CALL) return total;
  }
}

function dayStart(d: Date, addDays: number): string {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + addDays)).toISOString();
}

export async function runRetention(sql: Sql, retentionDays: number, now: Date = new Date()): Promise<MaintenanceReport> {
  if (!Number.isInteger(retentionDays) || retentionDays < 1) throw new Error(`retention must be a whole number of days >= 1 (got ${retentionDays})`);
  const partitions: string[] = [];
  for (let i = 0; i < 3; i++) {
    const [r] = await sql.unsafe<{ p: string }[]>(`SELECT ${SCHEMA}.ensure_partition($1::timestamptz) AS p`, [dayStart(now, i)]);
    partitions.push((r as { p: string }).p);
  }
  const rows = await sql.unsafe<{ partition_name: string; row_count: string }[]>(
    `SELECT partition_name, row_count::text AS row_count FROM ${SCHEMA}.drop_expired_partitions($1::integer)`,
    [retentionDays],
  );
  return { partitions, dropped: rows.map((r) => ({ partition: r.partition_name, rows: Number(r.row_count) })) };
}
