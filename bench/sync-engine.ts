// Child process of bench/sidecar-sync.ts: the engine with the given policy directory, the
// shared state on an embedded PostgreSQL (policy writes go through it, as in zt serve), and a
// sink that discards records (the sync does not involve the audit trail), so its memory
// and CPU are its own. Prints "READY <port>" once listening; stops on SIGTERM.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditConfigFromEnv, openAudit } from "../host/audit/index.js";
import { loadConfig } from "../host/common/config.js";
import { createLogger } from "../host/common/logger.js";
import { type AuditHandle, startEngine } from "../host/http/server.js";
import { openStateBackend } from "../host/store/index.js";

export const BENCH_TOKEN = "bench-admin-token-0123456789";

function discardingAudit(): AuditHandle {
  const status = { accepting: true, queued: 0, dropped: 0, detail: "bench: records discarded" };
  return { sink: { append: () => undefined, status: () => status, flush: async () => undefined, close: async () => undefined }, close: async () => undefined };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "zt-bench-sync-"));
  const cfg = loadConfig({ ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ZT_POLICY_PATH: process.argv[2]!, ZT_DATA_DIR: dir, ZT_LOG_LEVEL: "warn" });
  if (!cfg.ok) throw new Error(cfg.errors.join("; "));
  const log = createLogger({ level: "warn", write: (l) => void process.stderr.write(l + "\n") });
  // The trail's server hosts the shared state; the trail itself is not written (discarding sink).
  const trail = await openAudit({ ...auditConfigFromEnv({}), dataDir: cfg.config.dataDir });
  const state = openStateBackend({ engineDsn: trail.connections.engine, ownerDsn: trail.connections.owner, replicaId: "bench", log });
  const handle = await startEngine({ config: cfg.config, audit: discardingAudit(), state, log, adminToken: BENCH_TOKEN });
  // The parent asks for a full GC before it reads memory, so garbage does not count as held.
  process.on("SIGUSR2", () => (globalThis as { gc?: () => void }).gc?.());
  process.stdout.write(`READY ${handle.port}\n`);
  process.once("SIGTERM", () => {
    void handle.close().then(async () => {
      await state.close();
      await trail.close();
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`sync-engine: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
