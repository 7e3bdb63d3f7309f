// The API application on ZT_PORT: request ids, access logs, JSON errors, and the routes.
// Admin routes (policy and incident writes, audit reads) share one auth middleware.
import { Hono } from "hono";
import type { RolloutMode } from "../../compiler/model.js";
import type { AuditSink } from "../audit/record.js";
import { type AdminAuthenticator, adminAuth } from "./auth.js";
import type { EngineEnv } from "./context.js";
import { errorResponse } from "./errors.js";
import type { JwtVerifier } from "../identity/jwt.js";
import type { IncidentStore } from "../engine/incidents.js";
import type { Logger } from "../common/logger.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import type { PolicyStore } from "../engine/policy-store.js";
import type { Extension } from "./extension.js";
import { requestIdOf } from "./request-id.js";
import { admittedBy } from "./tls-names.js";
import { type EvaluateAuthorize, type EvaluateIdentify, evaluateRoutes } from "./routes/evaluate.js";
import { incidentRoutes } from "./routes/incidents.js";
import { metricsRoute } from "./routes/metrics.js";
import { policyRoutes } from "./routes/policies.js";

export interface AppDeps {
  store: PolicyStore;
  incidents: IncidentStore;
  sink: AuditSink;
  metrics: EngineMetrics;
  log: Logger;
  mode: RolloutMode;
  /** Ask in turn; the first that recognises the caller authorises an admin request. */
  authenticators: readonly AdminAuthenticator[];
  /** The audit routes (GET /v1/audit, GET /v1/graph, POST /v1/audit/ingest); mounted behind admin auth. */
  auditRoutes?: Hono | null;
  maxBodyBytes?: number;
  maxBatch?: number;
  /** Longest wait for room in the audit queue (backpressure) before decisions fail closed. */
  auditWaitMs?: number;
  maxPolicyBytes?: number;
  /** `origin` written into audit records. */
  origin?: string;
  /** Identity layer hooks for POST /v1/evaluate (see routes/evaluate.ts); none: anyone may ask. */
  identifyEvaluateCaller?: EvaluateIdentify | null;
  authorizeEvaluate?: EvaluateAuthorize | null;
  /** Agent JWT verifier for agent requests on POST /v1/evaluate; none: they are denied. */
  agentVerifier?: JwtVerifier | null;
  /** Other front rooms (extension.ts): claimed requests go to them first, their routes follow the API's. */
  extensions?: readonly Extension[];
}

export function createApp(deps: AppDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const { log } = deps;
  const extensions = deps.extensions ?? [];

  // A connection an extension admitted by its TLS name (tls-names.ts) carries only its requests.
  if (extensions.some((e) => e.tls)) {
    app.use(async (c, next) => {
      const ext = admittedBy(c.env?.incoming?.socket);
      if (ext === null) return next();
      if (!ext.app) return errorResponse(c, 421, { code: "misdirected_request", message: "this connection serves no requests" });
      return ext.app.fetch(c.req.raw, c.env);
    });
  }
  // Requests an extension claims as a whole (e.g. the proxy's public hostnames) never reach the API routes.
  for (const ext of extensions) {
    const { claims, app: extApp } = ext;
    if (claims && extApp) app.use(async (c, next) => (claims.call(ext, c.req.raw) ? extApp.fetch(c.req.raw, c.env) : next()));
  }

  // The hot path first: POST /v1/evaluate answers before the generic middleware below
  // (it sets its own request id and builds its response headers as a plain object).
  app.route(
    "/",
    evaluateRoutes({
      store: deps.store,
      sink: deps.sink,
      incidents: deps.incidents,
      metrics: deps.metrics,
      log,
      mode: deps.mode,
      origin: deps.origin ?? "engine",
      maxBodyBytes: deps.maxBodyBytes ?? 4 * 1024 * 1024,
      maxBatch: deps.maxBatch ?? 10_000,
      auditWaitMs: deps.auditWaitMs ?? 1_000,
      identify: deps.identifyEvaluateCaller ?? null,
      authorize: deps.authorizeEvaluate ?? null,
      agentVerifier: deps.agentVerifier ?? null,
    }),
  );

  app.use(async (c, next) => {
    const id = requestIdOf(c);
    c.set("requestId", id);
    c.set("caller", null);
    c.header("x-request-id", id);
    const t0 = performance.now();
    await next();
    const status = c.res.status;
    const level = status >= 500 ? "error" : status >= 400 ? "info" : "debug";
    if (log.enabled(level)) {
      log[level]("request", { request_id: id, method: c.req.method, path: c.req.path, status, ms: Math.round((performance.now() - t0) * 1000) / 1000, caller: c.get("caller") });
    }
  });

  app.onError((err, c) => {
    const id = c.get("requestId") ?? requestIdOf(c);
    log.error("unhandled error", { err, request_id: id, path: c.req.path });
    c.header("x-request-id", id);
    return errorResponse(c, 500, { code: "internal_error", message: "internal error; see the engine log", request_id: id });
  });
  app.notFound((c) => errorResponse(c, 404, { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }));

  const admin = adminAuth(deps.authenticators);
  app.route("/", policyRoutes({ store: deps.store, admin, mode: deps.mode, log, maxPolicyBytes: deps.maxPolicyBytes ?? 1024 * 1024 }));
  app.route("/", incidentRoutes({ incidents: deps.incidents, admin, log }));
  app.route("/", metricsRoute(deps.metrics));
  if (deps.auditRoutes) {
    for (const path of ["/v1/audit", "/v1/audit/*", "/v1/graph", "/v1/graph/*"]) app.use(path, admin);
    app.route("/", deps.auditRoutes as unknown as Hono<EngineEnv>);
  }
  for (const ext of extensions) if (ext.app && !ext.claims) app.route("/", ext.app);
  return app;
}
