// The proxy's PostgreSQL: by default the embedded server of the audit trail, in a database role
// and schema of its own (`zt_proxy`, which may touch nothing of the audit trail's); or an
// external server (ZT_PROXY_DSN) whose role owns the schema. Migrations run at start.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { AUDIT_DATABASE, quoteLiteral, withUser } from "../../audit/roles.js";
import { connect } from "../../audit/connect.js";
import { writeFileDurable } from "../../common/durable-file.js";
import { runMigrations } from "../../common/migrations.js";
import { PROXY_SCHEMA, PROXY_TRACK } from "./migrations.js";

export const PROXY_ROLE = "zt_proxy";

/** Embedded mode: creates (or re-passwords) the proxy's login role; its password lives in a 0600 file. */
async function bootstrapProxyRole(superDsn: string, dataDir: string): Promise<string> {
  const file = join(dataDir, "proxy-credentials.json");
  let password: string | null = null;
  try {
    password = (JSON.parse(await readFile(file, "utf8")) as { password?: string }).password ?? null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (password === null) {
    password = randomBytes(24).toString("base64url");
    await writeFileDurable(file, JSON.stringify({ password }) + "\n");
  }
  const sql = postgres(superDsn, { max: 1, onnotice: () => undefined });
  try {
    const [row] = await sql`SELECT 1 AS x FROM pg_roles WHERE rolname = ${PROXY_ROLE}`;
    await sql.unsafe(`${row ? "ALTER" : "CREATE"} ROLE ${PROXY_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${quoteLiteral(password)}`);
    // Its own schema only: the role creates zt_proxy and owns it; the audit schema grants it nothing.
    await sql.unsafe(`GRANT CONNECT, CREATE ON DATABASE ${AUDIT_DATABASE} TO ${PROXY_ROLE}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return withUser(superDsn, PROXY_ROLE, password, AUDIT_DATABASE);
}

export interface ProxyDbOptions {
  /** ZT_PROXY_DSN; null: the embedded server through `superuserDsn`. */
  readonly dsn: string | null;
  /** The embedded audit server's superuser DSN (null with an external audit server). */
  readonly superuserDsn: string | null;
  readonly dataDir: string;
}

/** A pool on the proxy's schema, migrated to this build's version. */
export async function openProxyDb(opts: ProxyDbOptions): Promise<Sql> {
  let dsn = opts.dsn;
  if (dsn === null) {
    if (opts.superuserDsn === null) throw new Error("the proxy keeps sessions in PostgreSQL: set ZT_PROXY_DSN (the audit trail's server is external, so there is no embedded one to use)");
    dsn = await bootstrapProxyRole(opts.superuserDsn, opts.dataDir);
  }
  const sql = connect(dsn, 4, "zt-proxy");
  try {
    await runMigrations(sql, PROXY_TRACK);
  } catch (e) {
    await sql.end({ timeout: 5 });
    throw e;
  }
  return sql;
}

export { PROXY_SCHEMA };
