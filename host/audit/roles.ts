// Embedded mode only: the superuser creates the three login roles of the audit trail and
// the `zt` database, and the passwords live in a 0600 file in the data directory. With an
// external ZT_AUDIT_DSN the DBA creates equivalent roles (docs/audit.md).
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { MAINTAINER_GROUP, WRITER_GROUP } from "./migrations.js";

/** The engine's group role on the shared state (host/store/migrations.ts grants it its rights). */
const STATE_WRITER_GROUP = "zt_state_writer";

export const AUDIT_DATABASE = "zt";
/** Owns the schema; runs migrations. */
export const OWNER_ROLE = "zt_audit_owner";
/** The engine: member of zt_audit_writer (INSERT + SELECT). */
export const ENGINE_ROLE = "zt_audit_engine";
/** The retention job: member of zt_audit_maintainer. */
export const MAINTENANCE_ROLE = "zt_audit_maint";

export interface AuditDsns {
  owner: string;
  engine: string;
  maintenance: string;
}

type Credentials = Record<"owner" | "engine" | "maintenance", string>;

export function quoteLiteral(s: string): string {
  return "'" + s.replace(/'/g, "''") + "'";
}

async function loadOrCreateCredentials(file: string): Promise<Credentials> {
  if (existsSync(file)) {
    const c = JSON.parse(await readFile(file, "utf8")) as Partial<Credentials>;
    if (typeof c.owner === "string" && typeof c.engine === "string" && typeof c.maintenance === "string") {
      return c as Credentials;
    }
  }
  const pw = (): string => randomBytes(24).toString("base64url");
  const creds: Credentials = { owner: pw(), engine: pw(), maintenance: pw() };
  await writeFile(file, JSON.stringify(creds) + "\n", { mode: 0o600 });
  return creds;
}

/** `superDsn` with another user, password and database. */
export function withUser(superDsn: string, user: string, password: string, database: string): string {
  const u = new URL(superDsn);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  u.pathname = "/" + database;
  return u.toString();
}

/** Creates (or re-passwords) the roles and the database; returns a DSN per role. Idempotent. */
export async function bootstrapRoles(superDsn: string, dataDir: string): Promise<AuditDsns> {
  const creds = await loadOrCreateCredentials(join(dataDir, "audit-credentials.json"));
  const sql = postgres(superDsn, { max: 1, onnotice: () => undefined });
  try {
    const ensure = async (role: string, attrs: string): Promise<void> => {
      const [row] = await sql`SELECT 1 AS x FROM pg_roles WHERE rolname = ${role}`;
      await sql.unsafe(`${row ? "ALTER" : "CREATE"} ROLE ${role} ${attrs}`);
    };
    await ensure(WRITER_GROUP, "NOLOGIN");
    await ensure(MAINTAINER_GROUP, "NOLOGIN");
    await ensure(OWNER_ROLE, `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${quoteLiteral(creds.owner)}`);
    await ensure(ENGINE_ROLE, `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${quoteLiteral(creds.engine)}`);
    await ensure(MAINTENANCE_ROLE, `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${quoteLiteral(creds.maintenance)}`);
    await sql.unsafe(`GRANT ${WRITER_GROUP} TO ${ENGINE_ROLE}`);
    await sql.unsafe(`GRANT ${MAINTAINER_GROUP} TO ${MAINTENANCE_ROLE}`);
    // The shared state (host/store) lives in the same database, written by the same engine role.
    await ensure(STATE_WRITER_GROUP, "NOLOGIN");
    await sql.unsafe(`GRANT ${STATE_WRITER_GROUP} TO ${ENGINE_ROLE}`);
    const [db] = await sql`SELECT 1 AS x FROM pg_database WHERE datname = ${AUDIT_DATABASE}`;
    if (!db) await sql.unsafe(`CREATE DATABASE ${AUDIT_DATABASE} OWNER ${OWNER_ROLE} ENCODING 'UTF8'`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return {
    owner: withUser(superDsn, OWNER_ROLE, creds.owner, AUDIT_DATABASE),
    engine: withUser(superDsn, ENGINE_ROLE, creds.engine, AUDIT_DATABASE),
    maintenance: withUser(superDsn, MAINTENANCE_ROLE, creds.maintenance, AUDIT_DATABASE),
  };
}
