// The audit trail's database for the commands that read it (zt replay, zt suggest): like the
// engine, ZT_AUDIT_DSN (or --dsn), else the embedded cluster in the data directory, started
// for the command if the engine is not running and stopped again afterwards.
import { join, resolve } from "node:path";
import type { Sql } from "postgres";
import { NoRecordsError, openTrailConnection } from "../rollout/trail.js";
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

/**
 * Runs `read` on the trail's database and closes it. No database, an empty window, a database
 * error, or an error the caller names as the user's (`usage`) become a UsageError (exit 2);
 * `onError` runs first (e.g. to end a progress line).
 */
export async function withTrailDb<T>(
  opts: { dsn?: string | undefined; dataDir?: string | undefined },
  read: (sql: Sql) => Promise<T>,
  more: { usage?: (e: unknown) => boolean; onError?: () => void } = {},
): Promise<T> {
  let db: TrailDb;
  try {
    db = await openTrailDb(opts);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`audit database: ${(e as Error).message}`);
  }
  try {
    return await read(db.sql);
  } catch (e) {
    more.onError?.();
    if (e instanceof NoRecordsError || more.usage?.(e)) throw new UsageError((e as Error).message);
    // postgres.js errors carry a code (SQLSTATE or a connection code): the database, not us.
    if ((e as { code?: string }).code !== undefined && !(e instanceof UsageError)) throw new UsageError(`audit database: ${(e as Error).message}`);
    throw e;
  } finally {
    await db.close();
  }
}
