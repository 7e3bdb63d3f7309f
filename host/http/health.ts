// The health listener (ZT_HEALTH_PORT, 8055): GET /healthz is 200 only when a policy module
// is loaded and the audit sink accepts records, else 503 with the reason; GET /metrics too,
// so Prometheus can scrape without reaching the API port.
import { Hono } from "hono";
import type { AuditSink } from "../audit/record.js";
import type { IdentityStatus } from "../identity/tls.js";
import type { LoopDelay } from "./event-loop.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import type { ActivePolicies, ReloadReport } from "../engine/policy-store.js";
import type { StateStatus } from "../engine/shared-state.js";
import { requestIdOf } from "./request-id.js";
import { metricsRoute } from "./routes/metrics.js";

export interface HealthDeps {
  /** The module serving now; null until the first one is loaded. */
  active: () => ActivePolicies | null;
  lastReload: () => ReloadReport | null;
  /** The replica's view of the shared state (null before it is open). Stale is reported, not a failure: the replica keeps serving. */
  state?: () => StateStatus | null;
  sink: AuditSink;
  metrics: EngineMetrics;
  /** True once shutdown started: report 503 so load balancers stop sending traffic. */
  draining: () => boolean;
  /** The serving identity (identity.source.status()); absent when the engine runs without the identity layer. */
  identity?: (() => IdentityStatus) | null;
  /** How long the event loop (shared with the API) was held lately (event-loop.ts). */
  eventLoop?: (() => LoopDelay) | null;
  /** Rewrites configured directories in the answer (shown-paths.ts): this port is plain HTTP. */
  hidePaths?: (text: string) => string;
}

/** The identity part of /healthz, snake_case like the rest of the body. */
function identityJson(s: IdentityStatus): Record<string, unknown> {
  return { mode: s.mode, ready: s.ready, spiffe_id: s.spiffeId, not_after: s.notAfter, rotations: s.rotations, last_error: s.lastError };
}

export function createHealthApp(deps: HealthDeps): Hono {
  const app = new Hono();
  app.use(async (c, next) => {
    c.header("x-request-id", requestIdOf(c));
    await next();
  });
  app.get("/healthz", (c) => {
    const active = deps.active();
    let audit: ReturnType<AuditSink["status"]> | null = null;
    let auditError: string | null = null;
    try {
      audit = deps.sink.status();
    } catch (e) {
      auditError = (e as Error).message;
    }
    let identity: IdentityStatus | null = null;
    let identityError: string | null = null;
    try {
      identity = deps.identity ? deps.identity() : null;
    } catch (e) {
      identityError = (e as Error).message;
    }
    const reasons: string[] = [];
    if (deps.draining()) reasons.push("shutting down");
    if (!active) reasons.push("no policy module loaded");
    if (identityError !== null) reasons.push(`identity status failed: ${identityError}`);
    else if (identity && !identity.ready) {
      // TLS mode without a valid SVID: no caller can be served (SPIRE has not delivered one yet, or it expired).
      reasons.push(identity.spiffeId === null ? `no serving SVID yet (${identity.mode})${identity.lastError ? `: ${identity.lastError}` : ""}` : `serving SVID not valid: ${identity.lastError ?? "expired"}`);
    }
    if (auditError !== null) reasons.push(`audit status failed: ${auditError}`);
    else if (audit && !audit.accepting) reasons.push(`audit sink not accepting records: ${audit.detail}`);
    const reload = deps.lastReload();
    const store = deps.state?.() ?? null;
    const hide = deps.hidePaths ?? ((t: string): string => t);
    const body = {
      status: reasons.length === 0 ? "ok" : "unavailable",
      reason: reasons.length === 0 ? null : hide(reasons.join("; ")),
      policy_version: active?.version ?? null,
      loaded_at: active?.loadedAt ?? null,
      event_loop: deps.eventLoop?.() ?? null,
      audit,
      identity: identity ? identityJson(identity) : null,
      last_reload: reload === null ? null : { ...reload, errors: reload.errors.map(hide) },
      store: store === null ? null : { ...store, last_error: store.last_error === null ? null : hide(store.last_error) },
    };
    return c.json(body, reasons.length === 0 ? 200 : 503);
  });
  app.route("/", metricsRoute(deps.metrics));
  app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  return app;
}
