// The audit trail's database for the commands that read it (zt replay, zt suggest): like the
// engine, ZT_AUDIT_DSN (or --dsn), else the embedded cluster in the data directory, started
// for the command if the engine is not running and stopped again afterwards.
import { join, resolve } from "node:path";
import type { Sql } from "postgres";
import { openTrailConnection } from "../rollout/trail.js";
import { hasEmbeddedCluster, startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../audit/embedded.js";
import { bootstrapRoles } from "../audit/roles.js";
import { UsageError } from "./io.js";

export interface TrailDb {
  readonly sql: Sql;
  close(): Promise<void>;
}

export async function openTrailDb(opts: { dsn?: string | undefined; dataDir?: string | undefined }, env: NodeJS.ProcessEnv = process.env): Promise<TrailDb> {
  let dsn = opts.dsn ?? (env.ZT_AUDIT_DSN || undefined);
  const dataDir = resolve(opts.dataDir ?? (env.ZT_DATA_DIR || "./data"));
  let embedded: EmbeddedPostgresHandle | null = null;
  if (!dsn) {
    if (!hasEmbeddedCluster(join(dataDir, "pg"))) throw new UsageError(`no ZT_AUDIT_DSN (or --dsn) and no embedded audit trail in ${join(dataDir, "pg")}`);
    embedded = await startEmbeddedPostgres({ dataDir: join(dataDir, "pg"), embeddedDir: env.ZT_AUDIT_EMBEDDED_DIR });
    dsn = (await bootstrapRoles(embedded.dsn, dataDir)).engine;
  }
  const sql = openTrailConnection(dsn, "zt-rollout-cli");
  return {
    sql,
    close: async () => {
      await sql.end({ timeout: 5 });
      // A cluster the running engine owns is left alone; one started for this command is stopped.
      if (embedded && !embedded.adopted) await embedded.stop();
    },
  };
}
