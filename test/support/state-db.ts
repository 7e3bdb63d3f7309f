// PostgreSQL for tests of the shared state: the run's embedded server (global-postgres.ts) and a
// fresh database per engine, with the audit trail's roles as zt serve sets them up.
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { silentLogger } from "../../host/common/logger.js";
import { openStateBackend, type StateBackend } from "../../host/store/index.js";

export interface StateDatabase {
  /** The engine's role (what ZT_AUDIT_DSN holds). */
  engineDsn: string;
  /** The owner role that migrates (ZT_AUDIT_MIGRATE_DSN). */
  ownerDsn: string;
  /** Superuser on the same database (pg_terminate_backend, checks of grants). */
  superDsn: string;
  name: string;
}

function withDatabase(dsn: string, db: string): string {
  const u = new URL(dsn);
  u.pathname = "/" + db;
  return u.toString();
}

/** A new, empty database on the run's server, owned by the audit owner role. */
export async function stateDatabase(): Promise<StateDatabase> {
  const pg = inject("ztPostgres");
  const name = `zt_t_${randomBytes(6).toString("hex")}`;
  const su = postgres(pg.superDsn, { max: 1, onnotice: () => undefined });
  try {
    await su.unsafe(`CREATE DATABASE ${name} OWNER zt_audit_owner ENCODING 'UTF8'`);
  } finally {
    await su.end({ timeout: 5 });
  }
  return { name, engineDsn: withDatabase(pg.engineDsn, name), ownerDsn: withDatabase(pg.ownerDsn, name), superDsn: withDatabase(pg.superDsn, name) };
}

export function backendFor(db: StateDatabase, replicaId = "test"): StateBackend {
  return openStateBackend({ engineDsn: db.engineDsn, ownerDsn: db.ownerDsn, replicaId, log: silentLogger });
}
