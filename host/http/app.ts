// The API application on ZT_PORT: the identity gate in front of everything, then request ids,
// access logs, JSON errors, and the routes. Which identity each route needs is one line in
// route-identity.ts; the gate enforces it (identity-gate.ts).
import { Hono } from "hono";
import { loadEvaluator } from "../../compiler/compile.js";
import type { RolloutMode } from "../../compiler/model.js";
import type { AuditSink } from "../audit/record.js";
import type { EngineEnv } from "./context.js";
import { RequestAborted } from "./body.js";
import { adminCheck } from "./auth.js";
import { type ApiError, errorResponse } from "./errors.js";
import { httpMetrics } from "./http-metrics.js";
import type { JwtVerifier } from "../identity/jwt.js";
import type { Logger } from "../common/logger.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import type { PolicyStore } from "../engine/policy-store.js";
import type { SharedState } from "../engine/shared-state.js";
import type { Extension } from "./extension.js";
import { requestIdOf } from "./request-id.js";
import { evaluateHandler, evaluateRoutes } from "./routes/evaluate.js";
import { type DirectHandler, directEvaluate } from "./direct-evaluate.js";
import type { CallerAuth, IdentityRule } from "../identity/caller.js";
import { gateCheck, identityGate } from "./identity-gate.js";
import { type RouteLine, type RouteRules, routeRules } from "./route-identity.js";
import { incidentRoutes } from "./routes/incidents.js";
import { metricsRoute } from "./routes/metrics.js";
import { policyRoutes } from "./routes/policies.js";
import { rolloutRoutes } from "./routes/rollout.js";
import { policyImageRoutes } from "./routes/policy-image.js";
import { sidecarRoutes } from "./routes/sidecars.js";
import { PolicyWatch } from "../engine/policy-watch.js";
import { SidecarRegistry } from "../engine/sidecars.js";
import type { SyncMetrics } from "../engine/sync-metrics.js";

export interface AppDeps {
  /** Policies, incidents and rollout of this replica, kept in step with the shared state. */
  state: SharedState;
  sink: AuditSink;
  metrics: EngineMetrics;
  log: Logger;
  mode: RolloutMode;
  /** Who is calling, and what each identity rule admits (host/identity/caller.ts). */
  auth: CallerAuth;
  /** The audit routes (GET /v1/audit, GET /v1/graph, POST /v1/audit/ingest); their rules are in route-identity.ts. */
  auditRoutes?: Hono | null;
  maxBodyBytes?: number;
  maxBatch?: number;
  /** Longest wait for room in the audit queue (backpressure) before decisions fail closed. */
  auditWaitMs?: number;
  maxPolicyBytes?: number;
  /** `origin` written into audit records (`engine:<replica id>`). */
  origin?: string;
  /** Agent JWT verifier for agent requests on POST /v1/evaluate; none: they are denied. */
  agentVerifier?: JwtVerifier | null;
  /** Other front rooms (extension.ts): claimed requests go to them first, their routes follow the API's. */
  extensions?: readonly Extension[];
  /** Rewrites configured directories in answers (shown-paths.ts). */
  hidePaths?: (text: string) => string;
  /** The route table; default ROUTE_IDENTITY (see EngineOptions.routeIdentity). */
  routeIdentity?: Readonly<Record<string, IdentityRule>> | undefined;
  /** Policy sync for sidecars (GET /v1/policy-image, GET /v1/sidecars); built here when absent. */
  sync?: SyncDeps;
}

export interface SyncDeps {
  readonly watch: PolicyWatch;
  readonly sidecars: SidecarRegistry;
  readonly metrics?: SyncMetrics;
  /** Longest long-poll wait a sidecar may ask for (default 300 s). */
  readonly maxWaitMs?: number;
}

/** The sync parts for a store: its long-poll watch and the registry of sidecar versions. */
export function createSync(store: PolicyStore): SyncDeps {
  return {
    watch: new PolicyWatch(store),
    sidecars: new SidecarRegistry({
      active: () => {
        const a = store.current();
        return a === null ? null : { version: a.version, sinceMs: Date.parse(a.loadedAt) };
      },
    }),
  };
}

export interface ApiApp {
  readonly app: Hono<EngineEnv>;
  /** The direct path of POST /v1/evaluate (direct-evaluate.ts), taken ahead of Hono; null when it is off. */
  readonly direct: DirectHandler | null;
  /** Every route and claim of the API port with its identity rule. */
  readonly routes: readonly RouteLine[];
}

export function createApp(deps: AppDeps): ApiApp {
  const app = new Hono<EngineEnv>();
  const { log } = deps;
  const extensions = deps.extensions ?? [];
  const claimers = extensions.filter((e) => e.claims && e.app);
  let rules: RouteRules | null = null;

  // First, for every request: the caller's identity against the rule of the route that will
  // answer (route-identity.ts). Nothing below runs for a refused request.
  app.use(
    identityGate({
      auth: deps.auth,
      log,
      claimers,
      rules: () => {
        if (rules === null) throw new Error("createApp: the route rules are not sealed");
        return rules;
      },
    }),
  );

  // Requests an extension claims as a whole (e.g. the proxy's public hostnames) never reach the API routes.
  if (claimers.length > 0) {
    app.use(async (c, next) => {
      const ext = c.get("claimedBy");
      return ext ? ext.app!.fetch(c.req.raw, c.env) : next();
    });
  }

  // The hot path first: POST /v1/evaluate answers before the generic middleware below
  // (it builds its response headers as a plain object). The same handler serves the direct path.
  const maxBodyBytes = deps.maxBodyBytes ?? 4 * 1024 * 1024;
  const evaluate = evaluateHandler({
      store: deps.state.policies,
      sink: deps.sink,
      incidents: deps.state.incidents,
      metrics: deps.metrics,
      log,
      mode: deps.mode,
      rollout: deps.state.rollout,
      origin: deps.origin ?? "engine",
      maxBodyBytes,
      maxBatch: deps.maxBatch ?? 10_000,
      auditWaitMs: deps.auditWaitMs ?? 1_000,
      auth: deps.auth,
      agentVerifier: deps.agentVerifier ?? null,
  });
  app.route("/", evaluateRoutes(evaluate, maxBodyBytes));

  // Long polls next, also before the generic middleware: a held poll should keep as little
  // per-request state alive as possible (docs/envoy.md, the held-poll figures).
  // The table decides (route-identity.ts); this re-check is what these routes were written with.
  const admin = adminCheck(deps.auth);
  const sync = deps.sync ?? createSync(deps.state.policies);
  app.route("/", policyImageRoutes({ filterModule: loadEvaluator, store: deps.state.policies, watch: sync.watch, admin, maxWaitMs: sync.maxWaitMs ?? 300_000, ...(sync.metrics ? { count: sync.metrics.answered } : {}) }));

  app.use(async (c, next) => {
    const id = c.get("requestId");
    c.header("x-request-id", id);
    const t0 = performance.now();
    await next();
    const status = c.res.status;
    const level = status >= 500 ? "error" : status >= 400 ? "info" : "debug";
    if (log.enabled(level)) {
      log[level]("request", { request_id: id, method: c.req.method, path: c.req.path, status, ms: Math.round((performance.now() - t0) * 1000) / 1000, caller: c.get("caller"), remote: c.get("identity").remoteAddress });
    }
  });

  const http = httpMetrics(deps.metrics.registry);
  // What a request that threw gets, logged and counted here; the direct path sends the same.
  const failure = (err: unknown, id: string, method: string, path: string): { status: 400 | 500; error: ApiError; withId: boolean } => {
    if (err instanceof RequestAborted) {
      // The client is gone: nobody reads this answer, and anyone could fill the error log with it.
      http.aborted();
      log.debug("request aborted by the client", { request_id: id, method, path });
      return { status: 400, error: { code: "request_aborted", message: "the request body did not arrive completely" }, withId: false };
    }
    log.error("unhandled error", { err, request_id: id, path });
    return { status: 500, error: { code: "internal_error", message: "internal error; see the engine log", request_id: id }, withId: true };
  };
  app.onError((err, c) => {
    const id = c.get("requestId") ?? requestIdOf(c);
    const f = failure(err, id, c.req.method, c.req.path);
    if (f.withId) c.header("x-request-id", id);
    return errorResponse(c, f.status, f.error);
  });
  app.notFound((c) => errorResponse(c, 404, { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }));

  app.route("/", policyRoutes({ store: deps.state.policies, state: deps.state, log, maxPolicyBytes: deps.maxPolicyBytes ?? 1024 * 1024, hidePaths: deps.hidePaths ?? ((t) => t) }));
  app.route("/", incidentRoutes({ incidents: deps.state.incidents, state: deps.state, log }));
  app.route("/", rolloutRoutes({ state: deps.state, log }));
  app.route("/", metricsRoute(deps.metrics));
  app.route("/", sidecarRoutes({ sidecars: sync.sidecars, admin }));
  if (deps.auditRoutes) app.route("/", deps.auditRoutes as unknown as Hono<EngineEnv>);
  for (const ext of extensions) if (ext.app && !ext.claims) app.route("/", ext.app);
  // Last: every route is registered. A route (or a claiming extension) without an identity rule stops the start here.
  rules = routeRules(app, claimers.map((e) => e.name), deps.routeIdentity);
  // The direct path only where it answers as Hono would: no extension claims requests first,
  // and the route table gives POST /v1/evaluate the rule the gate would find for it.
  const rule = rules.first("POST", "/v1/evaluate");
  const direct =
    claimers.length === 0 && rule !== null
      ? directEvaluate({
          evaluate,
          check: gateCheck(deps.auth, log),
          rule,
          maxBodyBytes,
          failed: (err, id, method, path) => {
            const f = failure(err, id, method, path);
            const headers: Record<string, string> = { "content-type": "application/json" };
            if (f.withId) headers["x-request-id"] = id;
            return { status: f.status, body: JSON.stringify({ error: f.error }), headers };
          },
        })
      : null;
  return { app, direct, routes: rules.lines };
}
