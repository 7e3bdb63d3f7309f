// How many decisions the trail received recently, from every replica and sidecar that writes
// to it: the console's decisions per second and deny rate. Counted in PostgreSQL over the
// primary key's time range, so a window costs what it holds.
import type { Sql } from "postgres";
import { SCHEMA } from "./migrations.js";

export interface DecisionCounts {
  /** The window, in seconds, ending now (the database's clock). */
  seconds: number;
  total: number;
  deny: number;
  /** DENY decisions not enforced: what observe mode would have refused. */
  observed_deny: number;
}

export async function decisionCounts(sql: Sql, seconds: number): Promise<DecisionCounts> {
  const [row] = await sql.unsafe<{ total: string; deny: string; observed_deny: string }[]>(
    `SELECT count(*) AS total,
            count(*) FILTER (WHERE decision = 'DENY') AS deny,
            count(*) FILTER (WHERE decision = 'DENY' AND NOT enforced) AS observed_deny
       FROM ${SCHEMA}.decisions
      WHERE ts >= now() - $1::integer * interval '1 second'`,
    [seconds],
  );
  return { seconds, total: Number(row?.total ?? 0), deny: Number(row?.deny ?? 0), observed_deny: Number(row?.observed_deny ?? 0) };
}
