// The audit trail as the server sees it: openAudit() starts (or connects to) PostgreSQL,
// applies migrations, starts the writer (replaying any spool left by a crash), schedules
// retention, and hands back the sink, the query connection, the metrics hook and verify.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Sql } from "postgres";
import type { Registry } from "prom-client";
import { DEFAULT_CHECKPOINT_SECONDS, defaultCheckpointDir, defaultCheckpointKeyFile, type AuditConfig } from "./config.js";
import { loadCheckpointKey, loadOrCreateCheckpointKey, type CheckpointKey } from "./checkpoint-key.js";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "./embedded.js";
import { runGraphRollup, runRetention, type MaintenanceReport } from "./maintenance.js";
import { registerAuditMetrics } from "./metrics.js";
import { checkSchemaVersion, migrate } from "./migrations.js";
import { bootstrapRoles } from "./roles.js";
import { verifyChains, type VerifyReport } from "./verify.js";
import { connect } from "./connect.js";
import { ThreadedAuditSink } from "./threaded-sink.js";

export type { AuditConfig } from "./config.js";
export { auditConfigFromEnv } from "./config.js";
export type { VerifyReport } from "./verify.js";
export type { MaintenanceReport } from "./maintenance.js";
export { DURABILITY_WINDOW_MS } from "./writer.js";

export interface AuditConnections {
  /** The engine's role: INSERT + SELECT only. */
  engine: string;
  /** Owner role running migrations (null: external server without ZT_AUDIT_MIGRATE_DSN). */
  owner: string | null;
  /** Retention role (null: external server without ZT_AUDIT_MAINTENANCE_DSN). */
  maintenance: string | null;
  /** Embedded mode only. */
  superuser: string | null;
}

export interface Audit {
  sink: ThreadedAuditSink;
  /** The engine role's pool for reads (GET /v1/audit, GET /v1/graph: see http/routes/audit.ts). */
  readonly query: Sql;
  /** zt_audit_dropped_total, zt_audit_queue_depth, zt_audit_spool_backlog, ... */
  registerMetrics(registry: Registry): void;
  verify(): Promise<VerifyReport>;
  runMaintenance(): Promise<MaintenanceReport | { skipped: string }>;
  close(): Promise<void>;
  readonly connections: AuditConnections;
  /** The embedded server when ZT_AUDIT_DSN is not set. */
  readonly embedded: EmbeddedPostgresHandle | null;
  /** Where the signed checkpoints go, and the public half of their key. */
  readonly checkpoints: { dir: string; url: string | null; keyId: string; publicKeyPem: string };
}

const HOUR_MS = 60 * 60 * 1000;

async function loadWriterId(dataDir: string): Promise<string> {
  const file = join(dataDir, "audit-writer-id");
  if (existsSync(file)) {
    const id = (await readFile(file, "utf8")).trim();
    if (id) return id;
  }
  const id = `${hostname().replace(/[^A-Za-z0-9._-]/g, "-")}-${randomBytes(3).toString("hex")}`;
  await writeFile(file, id + "\n", { mode: 0o600 });
  return id;
}

/** Connection-level trouble (server down, refused, restarting) as opposed to a real schema/permission error. */
function isUnreachable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code !== "string" || !/^[0-9A-Z]{5}$/.test(code) || /^(08|57|53)/.test(code);
}

export async function openAudit(config: AuditConfig): Promise<Audit> {
  const log = config.logger ?? (() => undefined);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  // The signing key first: a missing or wrong key file is a configuration error, found
  // before anything starts. Only the development default is generated.
  const keyFile = config.checkpointKeyFile ?? defaultCheckpointKeyFile(config.dataDir);
  const key: CheckpointKey = config.checkpointKeyFile ? await loadCheckpointKey(keyFile) : await loadOrCreateCheckpointKey(keyFile);
  const checkpointDir = config.checkpointDir ?? defaultCheckpointDir(config.dataDir);

  let embedded: EmbeddedPostgresHandle | null = null;
  let conns: AuditConnections;
  if (config.dsn) {
    conns = { engine: config.dsn, owner: config.migrateDsn ?? null, maintenance: config.maintenanceDsn ?? null, superuser: null };
  } else {
    // As root, PostgreSQL runs as its own account, which may keep its cluster in the data
    // directory if it can traverse it; execute-only keeps the spool and credentials unlistable.
    if (process.getuid?.() === 0) await chmod(config.dataDir, 0o711);
    embedded = await startEmbeddedPostgres({ dataDir: join(config.dataDir, "pg"), logger: log, ...(config.embeddedDir ? { embeddedDir: config.embeddedDir } : {}) });
    const dsns = await bootstrapRoles(embedded.dsn, config.dataDir);
    conns = { engine: dsns.engine, owner: dsns.owner, maintenance: dsns.maintenance, superuser: embedded.dsn };
  }

  let schemaReady = false;
  const ensureSchema = async (): Promise<void> => {
    if (schemaReady) return;
    const sql = connect(conns.owner ?? conns.engine, 1, "zt-audit-migrate");
    try {
      if (conns.owner) {
        const r = await migrate(sql);
        if (r.applied.length > 0) log({ msg: "audit: migrations applied", versions: r.applied });
      } else {
        await checkSchemaVersion(sql);
      }
      schemaReady = true;
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
  try {
    await ensureSchema();
  } catch (e) {
    // An external server that is down must not keep the engine from starting: records
    // are spooled and the schema is checked again at the next maintenance run.
    if (embedded || !isUnreachable(e)) {
      if (embedded) await embedded.stop();
      throw e;
    }
    log({ msg: "audit: PostgreSQL unreachable at start, spooling until it is back", error: String(e) });
  }

  // The writer (chaining, batching, PostgreSQL, spool) runs in its own thread.
  const querySql = connect(conns.engine, 4, "zt-audit-query");
  let writer: ThreadedAuditSink;
  try {
    writer = await ThreadedAuditSink.start(
      {
        dsn: conns.engine,
        spoolDir: join(config.dataDir, "spool"),
        writerId: config.writerId ?? (await loadWriterId(config.dataDir)),
        onSpoolFailure: config.onSpoolFailure,
        maxQueue: config.maxQueue ?? 100_000,
        ...(config.handoff === undefined ? {} : { handoff: config.handoff }),
        checkpoint: {
          keyFile,
          dir: checkpointDir,
          url: config.checkpointUrl ?? null,
          intervalMs: config.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_SECONDS * 1000,
        },
      },
      log,
      { keyId: key.keyId, publicKeyPem: key.publicKeyPem },
    );
  } catch (e) {
    await querySql.end({ timeout: 5 });
    if (embedded) await embedded.stop();
    throw e;
  }

  const runMaintenance = async (): Promise<MaintenanceReport | { skipped: string }> => {
    await ensureSchema();
    if (!conns.maintenance) return { skipped: "no maintenance role (set ZT_AUDIT_MAINTENANCE_DSN)" };
    const sql = connect(conns.maintenance, 1, "zt-audit-maintenance");
    try {
      const report = await runRetention(sql, config.retentionDays);
      if (report.dropped.length > 0) log({ msg: "audit: retention dropped partitions", dropped: report.dropped });
      report.rolledUpHours = await runGraphRollup(sql);
      return report;
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
  const maintain = (): void => {
    log({ msg: "audit: chain head", ...writer.head() });
    runMaintenance().catch((e: unknown) => log({ msg: "audit: maintenance failed", error: String(e) }));
  };
  maintain();
  const timer = setInterval(maintain, config.maintenanceIntervalMs ?? HOUR_MS);
  timer.unref();

  let closed = false;
  return {
    sink: writer,
    query: querySql,
    registerMetrics: (registry) => registerAuditMetrics(registry, writer),
    verify: () => verifyChains(querySql, { retentionDays: config.retentionDays }),
    runMaintenance,
    connections: conns,
    embedded,
    checkpoints: { dir: checkpointDir, url: config.checkpointUrl ?? null, keyId: key.keyId, publicKeyPem: key.publicKeyPem },
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await writer.close();
      log({ msg: "audit: chain head at shutdown", ...writer.head() });
      await querySql.end({ timeout: 5 });
      if (embedded) await embedded.stop();
    },
  };
}
