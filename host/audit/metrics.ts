// Prometheus metrics of the audit trail, read from the writer at scrape time (no work on
// the append path). zt_audit_dropped_total stays 0 unless records were really lost.
import { Counter, Gauge, type Registry } from "prom-client";
import type { BackpressureCounters, CheckpointStatus } from "./threaded-sink.js";
import type { WriterCounters } from "./writer.js";

/** What the metrics read from the writer (AuditWriter or ThreadedAuditSink). */
export interface AuditWriterGauges {
  readonly counters: WriterCounters;
  readonly queueDepth: number;
  readonly backlog: number;
  readonly postgresUp: boolean;
  /** Age in ms of the oldest record neither committed nor spooled (0: none). */
  readonly lagMs?: number;
  /** Requests that waited for room in the audit queue (the threaded sink only). */
  readonly backpressure?: BackpressureCounters;
  /** Signed checkpoints (the threaded sink only). */
  readonly checkpoints?: CheckpointStatus;
  readonly startedAtMs?: number;
}

function counter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect(this: Counter) {
      this.reset();
      this.inc(read());
    },
  });
}

function gauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect(this: Gauge) {
      this.set(read());
    },
  });
}

/** A counter with one label, read at scrape time as value per label value. */
function labelledCounter(registry: Registry, name: string, help: string, label: string, read: () => Record<string, number>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect(this: Counter) {
      this.reset();
      for (const [v, n] of Object.entries(read())) this.inc({ [label]: v }, n);
    },
  });
}

export function registerAuditMetrics(registry: Registry, w: AuditWriterGauges): void {
  counter(registry, "zt_audit_dropped_total", "Audit records lost (PostgreSQL and spool both failing, or refused at the memory bound)", () => w.counters.dropped);
  counter(registry, "zt_audit_written_total", "Audit records inserted into PostgreSQL", () => w.counters.written);
  counter(registry, "zt_audit_spooled_total", "Audit records written to the local spool", () => w.counters.spooled);
  counter(registry, "zt_audit_replayed_total", "Spooled audit records replayed into PostgreSQL", () => w.counters.replayed);
  counter(registry, "zt_audit_duplicates_total", "Audit records whose decision_id was already stored (kept in zt_audit.duplicates)", () => w.counters.duplicates);
  counter(registry, "zt_audit_conflicts_total", "Audit records reusing the decision_id of a different record", () => w.counters.conflicts);
  counter(registry, "zt_audit_rejected_total", "Audit records PostgreSQL refused, quarantined in spool/rejected.jsonl", () => w.counters.rejected);
  gauge(registry, "zt_audit_queue_depth", "Audit records in memory not yet committed", () => w.queueDepth);
  gauge(registry, "zt_audit_spool_backlog", "Spooled audit records waiting for replay into PostgreSQL", () => w.backlog);
  const bp = w.backpressure;
  if (bp) {
    labelledCounter(registry, "zt_audit_backpressure_total", "Requests that waited for room in the audit queue, by outcome (timed_out: their decisions failed closed)", "outcome", () => ({
      admitted: bp.admitted,
      timed_out: bp.timedOut,
    }));
  }
  const cp = w.checkpoints;
  if (cp) {
    // Before the first checkpoint, the age counts from start: a writer that never manages one still alerts.
    gauge(registry, "zt_audit_checkpoint_age_seconds", "Age of the newest signed audit checkpoint stored outside the database", () => (Date.now() - (cp.latestAtMs ?? w.startedAtMs ?? Date.now())) / 1000);
    counter(registry, "zt_audit_checkpoints_total", "Signed audit checkpoints written to the checkpoint directory", () => cp.written);
    labelledCounter(registry, "zt_audit_checkpoint_failures_total", "Audit checkpoints a sink did not take, by sink (directory: not issued, retried; witness: resent later)", "sink", () => ({
      ...cp.failures,
    }));
  }
  if (w.lagMs !== undefined) gauge(registry, "zt_audit_lag_seconds", "Age of the oldest audit record neither in PostgreSQL nor in the spool", () => (w.lagMs ?? 0) / 1000);
  gauge(registry, "zt_audit_postgres_up", "1 when the audit writer reaches PostgreSQL", () => (w.postgresUp ? 1 : 0));
}
