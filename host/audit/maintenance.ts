// Retention: run at start-up and hourly by the engine, as the maintenance role (which can
// create partitions and drop expired ones through the SECURITY DEFINER functions, and
// nothing else). Partitions for today and the next two days (UTC) are created ahead of time
// so the writer's on-demand creation is the exception.
import type { Sql } from "postgres";
import { SCHEMA } from "./migrations.js";

export interface MaintenanceReport {
  /** Partitions ensured (existing or created). */
  partitions: string[];
  dropped: Array<{ partition: string; rows: number }>;
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
