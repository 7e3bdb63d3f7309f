// Starts the engine: health listener first (503 until a module is loaded), then the
// incident and policy stores, then the API listener. close() is the SIGTERM path: stop
// accepting, let in-flight requests finish, stop watching, flush and close the audit sink.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import type { Registry } from "prom-client";
import type { AuditSink } from "./audit/record.js";
import { type AdminAuthenticator, bearerTokenAuthenticator } from "./auth.js";
import { createApp } from "./app.js";
import type { EngineConfig } from "./config.js";
import { createHealthApp } from "./health.js";
import type { EvaluateAuthorize, EvaluateIdentify } from "./routes/evaluate.js";
import { IncidentStore } from "./incidents.js";
import type { Logger } from "./logger.js";
import { createMetrics, type EngineMetrics } from "./metrics.js";
import { PolicyStore } from "./policy-store.js";

/** What the engine needs from the audit trail (openAudit() in host/audit/index.ts returns it). */
export interface AuditHandle {
  readonly sink: AuditSink;
  routes?(): Hono;
  registerMetrics?(registry: Registry): void;
  close(): Promise<void>;
}

export interface EngineOptions {
  config: EngineConfig;
  audit: AuditHandle;
  log: Logger;
  /** The admin bearer token (see ensureAdminToken). */
  adminToken: string;
  /** More admin authenticators (e.g. mTLS SPIFFE identities), asked after the token. */
  authenticators?: readonly AdminAuthenticator[];
  /** Lets other parts (identity, tunnels) register their metrics on the engine's registry. */
  registerMetrics?: (registry: Registry) => void;
  metrics?: EngineMetrics;
  /** Identity layer hooks for POST /v1/evaluate (caller identification, per-source authorisation). */
  identifyEvaluateCaller?: EvaluateIdentify;
  authorizeEvaluate?: EvaluateAuthorize;
  /** Extra options for the API listener (e.g. TLS: `{ createServer: https.createServer, serverOptions }`). */
  listenOptions?: Record<string, unknown>;
  /** Called with the API server once it listens (e.g. to hot-swap TLS contexts). */
  onApiServer?: (server: Server) => void;
}

export interface EngineHandle {
  readonly url: string;
  readonly healthUrl: string;
  readonly port: number;
  readonly healthPort: number;
  readonly store: PolicyStore;
  readonly incidents: IncidentStore;
  readonly metrics: EngineMetrics;
  /** Graceful stop; resolves when everything is closed. Safe to call twice. */
  close(): Promise<void>;
}

function listen(app: { fetch: (req: Request, env: never) => Response | Promise<Response> }, host: string, port: number, extra: Record<string, unknown> = {}): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve({ ...extra, fetch: app.fetch as never, port, hostname: host } as Parameters<typeof serve>[0]) as Server;
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

function urlOf(server: Server, host: string): { url: string; port: number } {
  const port = (server.address() as AddressInfo).port;
  const h = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return { url: `http://${h}:${port}`, port };
}

/** Stops accepting, closes idle keep-alive connections as they become idle, forces the rest after `timeoutMs`. */
function drain(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    server.close(() => {
      clearInterval(idle);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

export async function startEngine(opts: EngineOptions): Promise<EngineHandle> {
  const { config, audit, log } = opts;
  const metrics = opts.metrics ?? createMetrics({ maxSeries: config.metricsMaxSeries });
  audit.registerMetrics?.(metrics.registry);
  opts.registerMetrics?.(metrics.registry);
  metrics.auditQueue(() => audit.sink.status().queued);
  metrics.ensureSeedMetrics();

  let store: PolicyStore | null = null;
  let draining = false;
  const health = createHealthApp({
    active: () => store?.current() ?? null,
    lastReload: () => store?.lastReload() ?? null,
    sink: audit.sink,
    metrics,
    draining: () => draining,
  });
  const healthServer = await listen(health, config.host, config.healthPort);
  let incidents: IncidentStore;
  let apiServer: Server;
  try {
    incidents = await IncidentStore.open(join(config.dataDir, "incidents.json"));
    store = await PolicyStore.open({
      policyPath: config.policyPath,
      dataDir: config.dataDir,
      log,
      metrics,
      watchDebounceMs: config.watchDebounceMs,
      rescanIntervalMs: config.rescanIntervalMs,
    });
    const app = createApp({
      store,
      incidents,
      sink: audit.sink,
      metrics,
      log,
      mode: config.mode,
      authenticators: [bearerTokenAuthenticator(opts.adminToken), ...(opts.authenticators ?? [])],
      auditRoutes: audit.routes?.() ?? null,
      maxBodyBytes: config.maxBodyBytes,
      maxBatch: config.maxBatch,
      identifyEvaluateCaller: opts.identifyEvaluateCaller ?? null,
      authorizeEvaluate: opts.authorizeEvaluate ?? null,
    });
    apiServer = await listen(app, config.host, config.port, opts.listenOptions);
    opts.onApiServer?.(apiServer);
  } catch (e) {
    await store?.close();
    await drain(healthServer, 0);
    throw e;
  }
  store.startWatching();
  const api = urlOf(apiServer, config.host);
  const hp = urlOf(healthServer, config.host);
  log.info("zt engine listening", { api: api.url, health: hp.url, mode: config.mode, policy_path: config.policyPath, data_dir: config.dataDir, version: store.current()?.version });

  const activeStore = store;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      draining = true;
      log.info("shutting down: draining requests");
      await drain(apiServer, config.shutdownTimeoutMs);
      await activeStore.close();
      try {
        await audit.sink.flush();
      } catch (e) {
        log.error("audit flush failed during shutdown", { err: e });
      }
      await audit.close();
      await drain(healthServer, 1000);
      log.info("shutdown complete");
    })());

  return { url: api.url, healthUrl: hp.url, port: api.port, healthPort: hp.port, store: activeStore, incidents, metrics, close };
}
