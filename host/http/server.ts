// Starts the engine: health listener first (503 until a module is loaded and, with mTLS,
// until the engine has its SVID), then the incident and policy stores, then the API listener. close() is the SIGTERM path: stop
// accepting, let in-flight requests finish, stop watching, flush and close the audit sink.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ServerOptions as HttpsServerOptions } from "node:https";
import { Server as TlsServer } from "node:tls";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { Registry } from "prom-client";
import type { Sql } from "postgres";
import type { ThreadedAuditSink } from "../audit/threaded-sink.js";
import { auditRoutes } from "./routes/audit.js";
import type { Extension, ExtensionFactory } from "./extension.js";
import { enforceClientCertificates, withExtensionNames } from "./tls-names.js";
import type { AuditSink } from "../audit/record.js";
import { type AdminAuthenticator, adminAuth, bearerTokenAuthenticator } from "./auth.js";
import { createApp } from "./app.js";
import type { EngineConfig } from "../common/config.js";
import { createHealthApp } from "./health.js";
import type { EvaluateAuthorize, EvaluateIdentify } from "./routes/evaluate.js";
import type { JwtVerifier } from "../identity/jwt.js";
import type { IdentityStatus } from "../identity/tls.js";
import { IncidentStore } from "../engine/incidents.js";
import type { Logger } from "../common/logger.js";
import { createMetrics, type EngineMetrics } from "../metrics/metrics.js";
import { PolicyStore } from "../engine/policy-store.js";

/** What the engine needs from the audit trail (openAudit() in host/audit/index.ts returns it). */
export type AuditHandle = {
  readonly sink: AuditSink;
  registerMetrics?(registry: Registry): void;
  close(): Promise<void>;
} & (
  | { readonly query?: undefined }
  /** A PostgreSQL trail: its read pool and its sink serve GET /v1/audit, GET /v1/graph and ingest. */
  | { readonly query: Sql; readonly sink: ThreadedAuditSink }
);

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
  /** Verifies agent JWTs on POST /v1/evaluate; absent: agent requests are denied (agent_auth_not_configured). */
  agentVerifier?: JwtVerifier | null;
  /**
   * Extra options for the API listener (e.g. TLS: `{ createServer: https.createServer, serverOptions }`),
   * or a function giving them, called after `beforeListen` (a TLS identity exists only then).
   */
  listenOptions?: { serverOptions?: unknown; [k: string]: unknown } | (() => { serverOptions?: unknown; [k: string]: unknown } | null);
  /** Called with the API server once it listens (e.g. to hot-swap TLS contexts). */
  onApiServer?: (server: Server) => void;
  /**
   * Awaited after the health listener and the policy store are up, before the API listener
   * binds: e.g. the first SVID from the SPIRE agent. A rejection aborts the start.
   */
  beforeListen?: () => Promise<void>;
  /** The serving identity's state for /healthz (503 while not ready). */
  identityStatus?: () => IdentityStatus;
  /** Other front rooms mounted on the API listener (see extension.ts); built in this order. */
  extensions?: readonly ExtensionFactory[];
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
  // An https.Server is a tls.Server: the API under mTLS.
  const scheme = (server as unknown) instanceof TlsServer ? "https" : "http";
  return { url: `${scheme}://${h}:${port}`, port };
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

async function closeExtensions(extensions: readonly Extension[], log: Logger): Promise<void> {
  for (const ext of extensions) {
    try {
      await ext.close?.();
    } catch (e) {
      log.error("extension close failed", { extension: ext.name, err: e });
    }
  }
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
    identity: opts.identityStatus ?? null,
  });
  const healthServer = await listen(health, config.host, config.healthPort);
  // Logged on its own: the API port may open much later (policies to compile, an SVID to wait for).
  log.info("health listening", { health: urlOf(healthServer, config.host).url });
  let incidents: IncidentStore;
  let apiServer: Server;
  const extensions: Extension[] = [];
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
    const authenticators = [bearerTokenAuthenticator(opts.adminToken), ...(opts.authenticators ?? [])];
    const core = { store, incidents, sink: audit.sink, metrics, log, mode: config.mode, admin: adminAuth(authenticators) };
    for (const factory of opts.extensions ?? []) extensions.push(await factory(core));
    const app = createApp({
      store,
      incidents,
      sink: audit.sink,
      metrics,
      log,
      mode: config.mode,
      authenticators,
      extensions,
      auditRoutes: audit.query ? auditRoutes(audit.query, audit.sink) : null,
      maxBodyBytes: config.maxBodyBytes,
      maxBatch: config.maxBatch,
      auditWaitMs: config.auditWaitMs,
      identifyEvaluateCaller: opts.identifyEvaluateCaller ?? null,
      authorizeEvaluate: opts.authorizeEvaluate ?? null,
      agentVerifier: opts.agentVerifier ?? null,
    });
    if (opts.beforeListen) await opts.beforeListen();
    const extra = typeof opts.listenOptions === "function" ? opts.listenOptions() : opts.listenOptions;
    if (extensions.some((e) => e.tls) && !extra?.serverOptions) {
      throw new Error(`extension ${extensions.find((e) => e.tls)!.name} serves TLS names, but the API listener has no TLS (set ZT_SPIRE_SOCKET or ZT_TLS_*)`);
    }
    const listenExtra = extra?.serverOptions ? { ...extra, serverOptions: withExtensionNames(extra.serverOptions as HttpsServerOptions, extensions) } : extra;
    apiServer = await listen(app, config.host, config.port, listenExtra ?? undefined);
    if ((apiServer as unknown) instanceof TlsServer) {
      enforceClientCertificates(apiServer as unknown as TlsServer, extensions, (socket) =>
        log.warn("TLS connection rejected: no valid client SVID", { reason: String(socket.authorizationError ?? "no certificate"), servername: socket.servername || null, remote: socket.remoteAddress ?? null }),
      );
    }
    opts.onApiServer?.(apiServer);
    for (const ext of extensions) ext.onServer?.(apiServer);
  } catch (e) {
    await closeExtensions(extensions, log);
    await store?.close();
    await drain(healthServer, 0);
    throw e;
  }
  store.startWatching();
  const api = urlOf(apiServer, config.host);
  const hp = urlOf(healthServer, config.host);
  log.info("zt engine listening", { api: api.url, health: hp.url, tls: api.url.startsWith("https:") ? "mtls" : "none", mode: config.mode, policy_path: config.policyPath, data_dir: config.dataDir, version: store.current()?.version });

  const activeStore = store;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      draining = true;
      log.info("shutting down: draining requests");
      await drain(apiServer, config.shutdownTimeoutMs);
      await closeExtensions(extensions, log);
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
