// The engine's Prometheus metrics (HIP-0044 "Prometheus Metrics" plus ZT's own).
// Cardinality is bounded twice: label values come from the policy text (metric-labels.ts)
// and each labelled decision metric keeps at most `maxSeries` (source, dest) pairs.
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { PairCounts, pairCounter, WindowSummary } from "./series.js";

export type ErrorKind = "module_trap" | "audit_unavailable" | "internal";
/** startup; file: ZT_POLICY_PATH changed; api: a write this replica took; store: a change another replica wrote. */
export type ReloadTrigger = "startup" | "file" | "api" | "store";

/** The replica's view of the shared state, read at scrape time. */
export interface SharedStateGauge {
  configured: boolean;
  up: boolean;
  stale: boolean;
  sinceMatchSeconds: number | null;
  revision: number;
}

export interface EngineMetrics {
  readonly registry: Registry;
  /** One decision: labels already resolved by MetricLabels. */
  decision(allow: boolean, source: string, dest: string): void;
  /** A DENY computed but not enforced (observe mode). */
  observedDeny(source: string, dest: string): void;
  /** Evaluation latency of one decision. */
  latency(seconds: number, nowMs: number): void;
  /** The same latency for `n` decisions of one batch. */
  latencyMany(seconds: number, n: number, nowMs: number): void;
  error(kind: ErrorKind): void;
  reload(result: "success" | "failure", trigger: ReloadTrigger): void;
  policyVersion(version: string, loadedAtMs: number, policies: number, rules: number): void;
  /** zt_store_up, zt_store_stale, zt_store_seconds_since_match, zt_store_revision: read at scrape time. */
  sharedState(read: () => SharedStateGauge): void;
  /** Reports the audit queue depth at scrape time, unless the audit code exports its own gauge. */
  auditQueue(read: () => number): void;
  /**
   * Registers the seed's zt_svid_rotations_total{service} unless the identity layer registered
   * it on this registry already: call it after it had its turn. The seed's other gauge,
   * zt_wireguard_peer_up{cluster}, is not the engine's: the engine sees no tunnel, so the mesh
   * agent in each gateway pod exports it from the device (host/mesh, docs/mesh.md).
   */
  ensureSeedMetrics(): { svidRotations: Counter<"service"> };
}

export interface MetricsOptions {
  maxSeries?: number;
  /** Node.js process metrics (process_*, nodejs_*); on by default. */
  processMetrics?: boolean;
}

export const DECISION_METRIC = "zt_decisions_total";
export const AUDIT_QUEUE_METRIC = "zt_audit_queue_depth";

export function createMetrics(opts: MetricsOptions = {}): EngineMetrics {
  const registry = new Registry();
  const maxSeries = opts.maxSeries ?? 2000;
  if (opts.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // Gauges named *_total fail `promtool check metrics`; the per-type gauges without the
    // suffix (nodejs_active_handles{type} etc.) carry the same information.
    for (const n of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) registry.removeSingleMetric(n);
  }

  const decisions = new PairCounts(2, maxSeries);
  pairCounter(registry, DECISION_METRIC, "Access decisions by decision, source and destination workload (labels bounded by the policy set)", ["decision", "source", "dest"] as const, decisions, (source, dest, slot) => ({ decision: slot === 0 ? "allow" : "deny", source, dest }), 2);

  const observed = new PairCounts(1, maxSeries);
  pairCounter(registry, "zt_observed_denials_total", "Decisions that were DENY but not enforced (observe mode): what enforcement would block", ["source", "dest"] as const, observed, (source, dest) => ({ source, dest }), 1);

  const duration = new WindowSummary(registry, "zt_evaluation_duration_seconds", "Policy evaluation latency per decision (quantiles over the last 10 minutes)", [0.5, 0.9, 0.99], 65536, 600);

  const errors = new Counter({ name: "zt_evaluation_errors_total", help: "Internal errors during evaluation; each one fails closed (DENY) while enforcing", labelNames: ["kind"] as const, registers: [registry] });
  for (const k of ["module_trap", "audit_unavailable", "internal"] as const) errors.inc({ kind: k }, 0);

  const reloads = new Counter({ name: "zt_policy_reloads_total", help: "Policy module builds by result and trigger", labelNames: ["result", "trigger"] as const, registers: [registry] });
  const info = new Gauge({ name: "zt_policy_version_info", help: "The active policy module version (value is always 1)", labelNames: ["version"] as const, registers: [registry] });
  const policyInfo = new Gauge({ name: "zt_policy_info", help: "The policy module this replica serves, by version (sha256 of the module; value is always 1)", labelNames: ["version"] as const, registers: [registry] });
  const loadedAt = new Gauge({ name: "zt_policy_loaded_timestamp_seconds", help: "When the active policy module was swapped in (Unix time)", registers: [registry] });
  const policies = new Gauge({ name: "zt_policies", help: "Number of active policies", registers: [registry] });
  const rules = new Gauge({ name: "zt_policy_rules", help: "Number of rules in the active policies", registers: [registry] });

  return {
    registry,
    decision: (allow, source, dest) => decisions.add(source, dest, allow ? 0 : 1),
    observedDeny: (source, dest) => observed.add(source, dest, 0),
    latency: (seconds, nowMs) => duration.record(seconds, nowMs),
    latencyMany: (seconds, n, nowMs) => duration.recordMany(seconds, n, nowMs),
    error: (kind) => errors.inc({ kind }),
    reload: (result, trigger) => reloads.inc({ result, trigger }),
    policyVersion(version, loadedAtMs, policyCount, ruleCount) {
      info.reset();
      info.set({ version }, 1);
      policyInfo.reset();
      policyInfo.set({ version }, 1);
      loadedAt.set(loadedAtMs / 1000);
      policies.set(policyCount);
      rules.set(ruleCount);
    },
    sharedState(read) {
      const gauge = (name: string, help: string, value: (s: SharedStateGauge) => number | null): void => {
        registry.removeSingleMetric(name);
        new Gauge({
          name,
          help,
          registers: [registry],
          collect(this: Gauge) {
            const s = read();
            const v = s.configured ? value(s) : null;
            if (v === null) this.reset();
            else this.set(v);
          },
        });
      };
      gauge("zt_store_up", "1 while this replica reaches the shared state store (PostgreSQL), else 0", (s) => (s.up ? 1 : 0));
      gauge("zt_store_stale", "1 while this replica may serve something other than the shared state's latest (unreachable, behind, or a change that does not build here)", (s) => (s.stale ? 1 : 0));
      gauge("zt_store_seconds_since_match", "Seconds since this replica last matched the shared state's revision", (s) => s.sinceMatchSeconds);
      gauge("zt_store_revision", "The shared state revision this replica has applied", (s) => s.revision);
    },
    auditQueue(read) {
      if (registry.getSingleMetric(AUDIT_QUEUE_METRIC)) return;
      new Gauge({
        name: AUDIT_QUEUE_METRIC,
        help: "Audit records accepted but not yet stored in PostgreSQL",
        registers: [registry],
        collect(this: Gauge) {
          this.set(read());
        },
      });
    },
    ensureSeedMetrics() {
      const svid = (registry.getSingleMetric("zt_svid_rotations_total") as Counter<"service"> | undefined) ??
        new Counter({ name: "zt_svid_rotations_total", help: "X.509 SVID rotations by service", labelNames: ["service"] as const, registers: [registry] });
      return { svidRotations: svid };
    },
  };
}
