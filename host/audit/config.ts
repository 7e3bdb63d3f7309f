// Configuration of the audit trail, from the environment of `zt serve` / `zt audit verify`.
import { resolve } from "node:path";
import type { OnSpoolFailure } from "./refusal.js";

export interface AuditConfig {
  /** ZT_AUDIT_DSN: the engine's role on an external server. Absent: embedded PostgreSQL in <dataDir>/pg. */
  dsn?: string;
  /** ZT_AUDIT_MIGRATE_DSN (external only): owner role that runs migrations at start. Absent: the schema must be current. */
  migrateDsn?: string;
  /** ZT_AUDIT_MAINTENANCE_DSN (external only): role of the retention job. Absent: retention is not run by the engine. */
  maintenanceDsn?: string;
  /** ZT_DATA_DIR (default ./data): spool, writer id, embedded cluster and its credentials. */
  dataDir: string;
  /** ZT_AUDIT_EMBEDDED_DIR (as root, default /var/lib/zt-postgres): the embedded server's staged binaries, and its cluster when its account cannot reach the data directory. */
  embeddedDir?: string;
  /** ZT_AUDIT_RETENTION_DAYS (default 365). */
  retentionDays: number;
  /** ZT_AUDIT_ON_FAILURE (default deny): what append() does when a record cannot be made durable. */
  onSpoolFailure: OnSpoolFailure;
  /** ZT_AUDIT_WRITER_ID: names this engine's hash chains; default <hostname>-<random>, kept in <dataDir>/audit-writer-id. */
  writerId?: string;
  /** ZT_AUDIT_MAX_QUEUE (default 100000): records held in memory at most. */
  maxQueue?: number;
  /** How often retention runs (default hourly). */
  maintenanceIntervalMs?: number;
  logger?: (obj: Record<string, unknown>) => void;
}

export const DEFAULT_RETENTION_DAYS = 365;

function positiveInt(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === "") return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${name} must be a positive whole number (got "${v}")`);
  return Number(v);
}

export function auditConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AuditConfig {
  const mode = env.ZT_AUDIT_ON_FAILURE ?? "deny";
  if (mode !== "deny" && mode !== "allow-and-count") {
    throw new Error(`ZT_AUDIT_ON_FAILURE must be "deny" or "allow-and-count" (got "${mode}")`);
  }
  const cfg: AuditConfig = {
    dataDir: resolve(env.ZT_DATA_DIR || "./data"),
    retentionDays: positiveInt(env, "ZT_AUDIT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
    onSpoolFailure: mode,
    maxQueue: positiveInt(env, "ZT_AUDIT_MAX_QUEUE", 100_000),
  };
  if (env.ZT_AUDIT_DSN) cfg.dsn = env.ZT_AUDIT_DSN;
  if (env.ZT_AUDIT_MIGRATE_DSN) cfg.migrateDsn = env.ZT_AUDIT_MIGRATE_DSN;
  if (env.ZT_AUDIT_MAINTENANCE_DSN) cfg.maintenanceDsn = env.ZT_AUDIT_MAINTENANCE_DSN;
  if (env.ZT_AUDIT_WRITER_ID) cfg.writerId = env.ZT_AUDIT_WRITER_ID;
  if (env.ZT_AUDIT_EMBEDDED_DIR) cfg.embeddedDir = resolve(env.ZT_AUDIT_EMBEDDED_DIR);
  return cfg;
}
