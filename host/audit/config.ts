// Configuration of the audit trail, from the environment of `zt serve` / `zt audit verify`.
import { join, resolve } from "node:path";
import type { OnSpoolFailure } from "./refusal.js";
import type { Handoff } from "./writer-protocol.js";
import { MAX_RECORD_AGE_MS } from "./validate.js";

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
  /** ZT_AUDIT_CHECKPOINT_KEY: PEM file of the Ed25519 checkpoint key. Absent: `<dataDir>/audit-checkpoint-key.pem`, generated if missing (development). */
  checkpointKeyFile?: string;
  /** ZT_AUDIT_CHECKPOINT_DIR (default `<dataDir>/checkpoints`): where signed checkpoints are kept; a volume of its own in production. */
  checkpointDir?: string;
  /** ZT_AUDIT_CHECKPOINT_URL: an HTTP witness that also receives every checkpoint. */
  checkpointUrl?: string;
  /** ZT_AUDIT_CHECKPOINT_SECONDS (default 60), in ms. */
  checkpointIntervalMs?: number;
  logger?: (obj: Record<string, unknown>) => void;
  /** How records cross to the writer thread (default "ring"; "message" is the reference path the tests compare it with). */
  handoff?: Handoff;
}

export const DEFAULT_RETENTION_DAYS = 365;
/** Records are accepted up to MAX_RECORD_AGE_MS after their decision, so retention must keep them longer than that. */
export const MIN_RETENTION_DAYS = Math.ceil(MAX_RECORD_AGE_MS / 86_400_000) + 1;
export const DEFAULT_CHECKPOINT_SECONDS = 60;

/** The development default of the checkpoint key, beside the rest of the engine's state. */
export function defaultCheckpointKeyFile(dataDir: string): string {
  return join(dataDir, "audit-checkpoint-key.pem");
}

export function defaultCheckpointDir(dataDir: string): string {
  return join(dataDir, "checkpoints");
}

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
  const retentionDays = positiveInt(env, "ZT_AUDIT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS);
  if (retentionDays < MIN_RETENTION_DAYS) {
    throw new Error(`ZT_AUDIT_RETENTION_DAYS must be at least ${MIN_RETENTION_DAYS} (records are accepted up to ${MIN_RETENTION_DAYS - 1} days after their decision; got ${retentionDays})`);
  }
  const cfg: AuditConfig = {
    dataDir: resolve(env.ZT_DATA_DIR || "./data"),
    retentionDays,
    onSpoolFailure: mode,
    maxQueue: positiveInt(env, "ZT_AUDIT_MAX_QUEUE", 100_000),
  };
  if (env.ZT_AUDIT_DSN) cfg.dsn = env.ZT_AUDIT_DSN;
  if (env.ZT_AUDIT_MIGRATE_DSN) cfg.migrateDsn = env.ZT_AUDIT_MIGRATE_DSN;
  if (env.ZT_AUDIT_MAINTENANCE_DSN) cfg.maintenanceDsn = env.ZT_AUDIT_MAINTENANCE_DSN;
  if (env.ZT_AUDIT_WRITER_ID) cfg.writerId = env.ZT_AUDIT_WRITER_ID;
  if (env.ZT_AUDIT_CHECKPOINT_KEY) cfg.checkpointKeyFile = resolve(env.ZT_AUDIT_CHECKPOINT_KEY);
  if (env.ZT_AUDIT_CHECKPOINT_DIR) cfg.checkpointDir = resolve(env.ZT_AUDIT_CHECKPOINT_DIR);
  if (env.ZT_AUDIT_CHECKPOINT_URL) {
    const u = env.ZT_AUDIT_CHECKPOINT_URL;
    if (!/^https?:\/\/[^\s]+$/.test(u)) throw new Error(`ZT_AUDIT_CHECKPOINT_URL must be an http(s) URL (got "${u}")`);
    cfg.checkpointUrl = u;
  }
  cfg.checkpointIntervalMs = positiveInt(env, "ZT_AUDIT_CHECKPOINT_SECONDS", DEFAULT_CHECKPOINT_SECONDS) * 1000;
  if (env.ZT_AUDIT_EMBEDDED_DIR) cfg.embeddedDir = resolve(env.ZT_AUDIT_EMBEDDED_DIR);
  return cfg;
}
