// Child process of bench/http.ts: serves the engine (`engine`: real policies, real audit
// trail on embedded PostgreSQL in a temporary data directory), the same engine with a sink
// that discards records (`engine-discard`: a comparator to measure what the audit trail
// costs; the shipped engine has no such mode), or the baseline (`baseline`: a minimal Hono
// handler returning a constant JSON); prints "READY <port>" once listening. Stops on SIGTERM.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { AddressInfo } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { auditConfigFromEnv, openAudit } from "../host/audit/index.js";
import { loadConfig } from "../host/common/config.js";
import { createLogger } from "../host/common/logger.js";
import { type AuditHandle, startEngine } from "../host/http/server.js";

/** Accepts every record and keeps none: only for measuring the audit trail's cost. */
function discardingAudit(): AuditHandle {
  const status = { accepting: true, queued: 0, dropped: 0, detail: "bench comparator: records discarded" };
  return {
    sink: { append: () => undefined, status: () => status, flush: async () => undefined, close: async () => undefined },
    close: async () => undefined,
  };
}

async function baseline(): Promise<() => Promise<void>> {
  const app = new Hono();
  const body = { decision: "ALLOW", enforced: true };
  app.post("/v1/evaluate", (c) => c.json(body));
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      process.stdout.write(`READY ${info.port}\n`);
      resolve(() => new Promise((r) => server.close(() => r())));
    });
  });
}

/**
 * A second baseline that does the transport work the engine cannot avoid: it reads the
 * request body and answers with a response of the engine's size and headers.
 */
async function shapedBaseline(): Promise<() => Promise<void>> {
  const app = new Hono();
  const version = "sha256:" + "0".repeat(64);
  const body = JSON.stringify({ decision: "ALLOW", enforced: true, policy_matched: "hanzo-core-policy/rule-2", reason: "allowed_by_rule", policy_version: version, latency_us: 12, decision_id: "00000000-0000-4000-8000-000000000000" });
  let n = 0;
  app.post("/v1/evaluate", async (c) => {
    await c.req.text();
    return new Response(body, { status: 200, headers: { "content-type": "application/json", "x-request-id": `bench-${n++}`, "x-zt-policy-version": version } });
  });
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      process.stdout.write(`READY ${info.port}\n`);
      resolve(() => new Promise((r) => server.close(() => r())));
    });
  });
}

async function engine(policyPath: string, discard: boolean): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), "zt-bench-http-"));
  const cfg = loadConfig({ ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ZT_POLICY_PATH: policyPath, ZT_DATA_DIR: dir, ZT_LOG_LEVEL: "warn", ZT_MAX_BATCH: "10000" });
  if (!cfg.ok) throw new Error(cfg.errors.join("; "));
  const log = createLogger({ level: "warn", write: (l) => void process.stderr.write(l + "\n") });
  // ZT_BENCH_AUDIT_HANDOFF=message: the reference hand-off (postMessage groups) instead of the ring, for A/B runs.
  const auditConfig = { ...auditConfigFromEnv({ ZT_DATA_DIR: dir }), ...(process.env.ZT_BENCH_AUDIT_HANDOFF === "message" ? { handoff: "message" as const } : {}) };
  const audit = discard ? discardingAudit() : await openAudit(auditConfig);
  const handle = await startEngine({ config: cfg.config, audit, log, adminToken: "bench-admin-token-0123456789" });
  process.stdout.write(`READY ${handle.port}\n`);
  return async () => {
    await handle.close();
    // PostgreSQL may still be removing files right after it stopped: retry.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
}

async function main(): Promise<void> {
  const kind = process.argv[2];
  const stop = kind === "baseline" ? await baseline() : kind === "baseline-shaped" ? await shapedBaseline() : kind === "engine" || kind === "engine-discard" ? await engine(process.argv[3]!, kind === "engine-discard") : null;
  if (!stop) throw new Error("usage: http-server baseline|baseline-shaped|engine|engine-discard <policy path>");
  // SIGUSR2: print the longest hold of this process's event loop since the last one (bench/hostile.ts).
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  process.on("SIGUSR2", () => {
    process.stdout.write(`LOOP ${(loop.max / 1e6).toFixed(2)} ${(loop.percentile(99) / 1e6).toFixed(2)}\n`);
    loop.reset();
  });
  process.once("SIGTERM", () => {
    void stop().then(() => process.exit(0));
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`http-server: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
