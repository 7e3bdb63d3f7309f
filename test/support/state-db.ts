// PostgreSQL for tests of the shared state: one embedded server per test process, started on
// first use, and a fresh database per engine (the store's schema and the audit trail's roles
// as zt serve would set them up in embedded mode).
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../host/audit/embedded.js";
import { bootstrapRoles } from "../../host/audit/roles.js";
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

let server: Promise<{ pg: EmbeddedPostgresHandle; dir: string; dsns: { owner: string; engine: string } }> | null = null;

function withDatabase(dsn: string, db: string): string {
  const u = new URL(dsn);
  u.pathname = "/" + db;
  return u.toString();
}

/** The shared test server (started on first call). */
export function sharedPostgres(): Promise<{ pg: EmbeddedPostgresHandle; dsns: { owner: string; engine: string } }> {
  server ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-state-pg-"));
    chmodSync(dir, 0o711);
    const pg = await startEmbeddedPostgres({ dataDir: join(dir, "pg") });
    const dsns = await bootstrapRoles(pg.dsn, dir);
    return { pg, dir, dsns };
  })();
  return server;
}

/** A new, empty database on the shared server, owned by the audit owner role. */
export async function stateDatabase(): Promise<StateDatabase> {
  const { pg, dsns } = await sharedPostgres();
  const name = `zt_t_${randomBytes(6).toString("hex")}`;
  const su = postgres(pg.dsn, { max: 1, onnotice: () => undefined });
  try {
    await su.unsafe(`CREATE DATABASE ${name} OWNER zt_audit_owner ENCODING 'UTF8'`);
  } finally {
    await su.end({ timeout: 5 });
  }
  return { name, engineDsn: withDatabase(dsns.engine, name), ownerDsn: withDatabase(dsns.owner, name), superDsn: withDatabase(pg.dsn, name) };
}

export function backendFor(db: StateDatabase, replicaId = "test"): StateBackend {
  return openStateBackend({ engineDsn: db.engineDsn, ownerDsn: db.ownerDsn, replicaId, log: silentLogger });
}

/** Stops the shared server (afterAll of a test file that used it). */
export async function stopSharedPostgres(): Promise<void> {
  if (!server) return;
  const s = await server;
  server = null;
  await s.pg.stop();
  rmSync(s.dir, { recursive: true, force: true });
}
