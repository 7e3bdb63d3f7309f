// Starts the engine: health listener first (503 until a module is loaded and, with mTLS,
// until the engine has its SVID), then the shared state (policies, incidents, rollout: from the
// store, or the local cache during an outage), then the API listener. close() is the SIGTERM
// path: stop accepting, let in-flight requests finish, stop watching and syncing, flush and
// close the audit sink.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
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
import { withExtensionNames } from "./tls-names.js";
import type { AuditSink } from "../audit/record.js";
import { adminCheck } from "./auth.js";
import { createApp, createSync, type SyncDeps } from "./app.js";
import type { DirectHandler } from "./direct-evaluate.js";
import { applyConnectionLimits, type ConnectionLimits } from "./connection-limits.js";
import { registerSyncMetrics } from "../engine/sync-metrics.js";
import type { RouteLine } from "./route-identity.js";
import type { EngineConfig } from "../common/config.js";
import { createHealthApp } from "./health.js";
import { startEventLoopMonitor } from "./event-loop.js";
import { pathHider } from "./shown-paths.js";
import { type CallerAuth, createCallerAuth, type IdentityRule } from "../identity/caller.js";
import type { JwtVerifier } from "../identity/jwt.js";
import type { IdentityStatus } from "../identity/tls.js";
import type { IncidentStore } from "../engine/incidents.js";
import type { Logger } from "../common/logger.js";
import { createMetrics, type EngineMetrics } from "../metrics/metrics.js";
import type { PolicyStore } from "../engine/policy-store.js";
import { SharedState } from "../engine/shared-state.js";
import { type StateBackend, StateCache } from "../store/index.js";

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
  /** The admin bearer token (see ensureAdminToken); used by the default `auth`. */
  adminToken: string;
  /**
   * Who is calling and what each identity rule admits (host/identity: setupIdentity().auth,
   * with the peer verifier of the mTLS listener). Default: plaintext callers, admin by token.
   */
  auth?: CallerAuth;
  /** Lets other parts (identity, tunnels) register their metrics on the engine's registry. */
  registerMetrics?: (registry: Registry) => void;
  metrics?: EngineMetrics;
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
  /**
   * The route table (default ROUTE_IDENTITY, which `zt serve` uses). Only tests that mount
   * routes of their own pass another: ROUTE_IDENTITY plus their lines.
   */
  routeIdentity?: Readonly<Record<string, IdentityRule>>;
  /**
   * The shared state (host/store) on the audit trail's PostgreSQL; `zt serve` always passes it.
   * Without it the engine serves its policy files alone and refuses writes (503 no_state_store).
   */
  state?: StateBackend | null;
  /**
   * Serve POST /v1/evaluate by its direct path (direct-evaluate.ts; default true). Off, every
   * request goes through Hono: the reference the direct path is tested against.
   */
  directEvaluate?: boolean;
}

export interface EngineHandle {
  readonly url: string;
  readonly healthUrl: string;
  readonly port: number;
  readonly healthPort: number;
  readonly store: PolicyStore;
  readonly incidents: IncidentStore;
  readonly state: SharedState;
  readonly metrics: EngineMetrics;
  /** Every route and claim of the API port with its identity rule (route-identity.ts). */
  readonly routes: readonly RouteLine[];
  /** Graceful stop; resolves when everything is closed. Safe to call twice. */
  close(): Promise<void>;
}

function listen(app: { fetch: (req: Request, env: never) => Response | Promise<Response> }, host: string, port: number, extra: Record<string, unknown> = {}, limits: ConnectionLimits | null = null, direct: DirectHandler | null = null): Promise<Server> {
  return new Promise((resolve, reject) => {
    // Node checks the header and request timeouts every connectionsCheckingInterval (30 s by
    // default): once a second makes a 10 s header timeout mean about 10 s.
    const serverOptions = { connectionsCheckingInterval: 1000, ...(extra.serverOptions as Record<string, unknown> | undefined) };
    const server = serve({ ...extra, serverOptions, fetch: app.fetch as never, port, hostname: host } as Parameters<typeof serve>[0]) as Server;
    if (direct !== null) takeFirst(server, direct);
    if (limits !== null) applyConnectionLimits(server, limits);
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** Puts `direct` in front of @hono/node-server's request listener (the only one so far): what it does not take goes on to Hono. */
function takeFirst(server: Server, direct: DirectHandler): void {
  const listeners = server.listeners("request") as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  if (listeners.length !== 1) throw new Error(`the API server has ${listeners.length} request listeners; expected @hono/node-server's alone`);
  const hono = listeners[0]!;
  server.removeListener("request", hono);
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (!direct(req, res)) hono(req, res);
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

  let state: SharedState | null = null;
  let draining = false;
  const loop = startEventLoopMonitor();
  const hidePaths = pathHider({ policyPath: config.policyPath, dataDir: config.dataDir });
  const health = createHealthApp({
    active: () => state?.policies.current() ?? null,
    lastReload: () => state?.policies.lastReload() ?? null,
    state: () => state?.status() ?? null,
    sink: audit.sink,
    metrics,
    draining: () => draining,
    identity: opts.identityStatus ?? null,
    eventLoop: () => loop.snapshot(),
    hidePaths,
  });
  const healthServer = await listen(health, config.host, config.healthPort);
  // Logged on its own: the API port may open much later (policies to compile, an SVID to wait for).
  log.info("health listening", { health: urlOf(healthServer, config.host).url });
  let apiServer: Server;
  let routes: readonly RouteLine[];
  let sync: SyncDeps | null = null;
  const extensions: Extension[] = [];
  try {
    state = await SharedState.open({
      backend: opts.state ?? null,
      cache: opts.state ? new StateCache(join(config.dataDir, "state-cache")) : null,
      replicaId: config.replicaId,
      envMode: config.mode,
      syncIntervalMs: config.stateSyncIntervalMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      policies: { policyPath: config.policyPath, log, metrics, watchDebounceMs: config.watchDebounceMs, rescanIntervalMs: config.rescanIntervalMs, buildInline: config.buildInline, buildMemoryMb: config.buildMemoryMb, buildTimeoutMs: config.buildTimeoutMs },
      log,
      metrics,
    });
    const auth = opts.auth ?? createCallerAuth({ peer: null, adminToken: opts.adminToken, adminSpiffeIds: new Set(), trustedEvaluators: new Set() });
    const core = { store: state.policies, incidents: state.incidents, state, sink: audit.sink, metrics, log, mode: config.mode, admin: adminCheck(auth) };
    const parts = createSync(state.policies);
    sync = { ...parts, metrics: registerSyncMetrics(metrics.registry, parts.watch, parts.sidecars) };
    for (const factory of opts.extensions ?? []) extensions.push(await factory(core));
    const built = createApp({
      state,
      origin: `engine:${config.replicaId}`,
      sink: audit.sink,
      metrics,
      log,
      mode: config.mode,
      auth,
      hidePaths,
      extensions,
      routeIdentity: opts.routeIdentity,
      auditRoutes: audit.query ? auditRoutes(audit.query, audit.sink, { onIngest: (records) => sync!.sidecars.observe(records) }) : null,
      sync,
      maxBodyBytes: config.maxBodyBytes,
      maxPolicyBytes: config.maxPolicyBytes,
      maxBatch: config.maxBatch,
      auditWaitMs: config.auditWaitMs,
      agentVerifier: opts.agentVerifier ?? null,
    });
    if (opts.beforeListen) await opts.beforeListen();
    const extra = typeof opts.listenOptions === "function" ? opts.listenOptions() : opts.listenOptions;
    if (extensions.some((e) => e.tls) && !extra?.serverOptions) {
      throw new Error(`extension ${extensions.find((e) => e.tls)!.name} serves TLS names, but the API listener has no TLS (set ZT_SPIRE_SOCKET or ZT_TLS_*)`);
    }
    // The extensions' own TLS names get their own certificates (tls-names.ts).
    const listenExtra = extra?.serverOptions ? { ...extra, serverOptions: withExtensionNames(extra.serverOptions as HttpsServerOptions, extensions) } : extra;
    apiServer = await listen(built.app, config.host, config.port, listenExtra ?? undefined, config.http, opts.directEvaluate === false ? null : built.direct);
    routes = built.routes;
    opts.onApiServer?.(apiServer);
    for (const ext of extensions) ext.onServer?.(apiServer);
  } catch (e) {
    await closeExtensions(extensions, log);
    await state?.close();
    await drain(healthServer, 0);
    loop.stop();
    throw e;
  }
  state.policies.startWatching();
  state.start();
  const api = urlOf(apiServer, config.host);
  const hp = urlOf(healthServer, config.host);
  log.info("zt engine listening", { api: api.url, health: hp.url, tls: api.url.startsWith("https:") ? "mtls" : "none", mode: config.mode, policy_path: config.policyPath, data_dir: config.dataDir, version: state.policies.current()?.version, replica: config.replicaId, state: state.status().source });

  const activeState = state;
  const activeSync = sync!;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      draining = true;
      log.info("shutting down: draining requests");
      // Held long polls answer 304 now: sidecars keep their image and poll another replica.
      activeSync.watch.close();
      await drain(apiServer, config.shutdownTimeoutMs);
      await closeExtensions(extensions, log);
      await activeState.close();
      try {
        await audit.sink.flush();
      } catch (e) {
        log.error("audit flush failed during shutdown", { err: e });
      }
      await audit.close();
      await drain(healthServer, 1000);
      loop.stop();
      log.info("shutdown complete");
    })());

  return { url: api.url, healthUrl: hp.url, port: api.port, healthPort: hp.port, store: activeState.policies, incidents: activeState.incidents, state: activeState, metrics, routes, close };
}
