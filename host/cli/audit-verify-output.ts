// What `zt audit verify` reports besides its exit code: a text summary for people, and the
// result as Prometheus metrics for the alert rules (deploy/prometheus/zt-audit-rules.yaml),
// written for node_exporter's textfile collector or pushed to a Pushgateway, as batch jobs do.
import { rename, writeFile } from "node:fs/promises";
import { Gauge, Pushgateway, Registry } from "prom-client";
import type { VerifyReport } from "../audit/verify.js";

export interface VerifyOutcome {
  /** Null when the trail or the checkpoints could not be read. */
  report: VerifyReport | null;
  error: string | null;
}

export function formatVerifyReport(r: VerifyReport): string {
  const lines: string[] = [];
  const n = r.broken.length + r.problems.length;
  lines.push(r.ok ? "zt audit verify: intact" : `zt audit verify: TAMPERED (${n} problem${n === 1 ? "" : "s"})`);
  for (const p of r.problems) lines.push(`  ${p}`);
  for (const b of r.broken) {
    const at = b.decision_id ? ` (decision ${b.decision_id}, ${b.timestamp})` : "";
    lines.push(`  chain ${b.chain_id}, record ${b.seq}${at}: ${b.problem}`);
  }
  lines.push(`checked ${r.chains} chains, ${r.records} records, ${r.retention_gaps} retention gaps`);
  if (r.checkpoints) {
    lines.push(`against ${r.checkpoints.checkpoints} checkpoints of ${r.checkpoints.writers} writer${r.checkpoints.writers === 1 ? "" : "s"}`);
  } else {
    lines.push("without checkpoints: records cut from a chain's end, deleted or forged chains cannot be seen (use --checkpoints)");
  }
  return lines.join("\n") + "\n";
}

/** The result as metrics: 1/0, how many problems, when (an alert also fires when verify stops running). */
export function verifyRegistry(o: VerifyOutcome, now: Date = new Date()): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, value: number): void => {
    new Gauge({ name, help, registers: [registry] }).set(value);
  };
  gauge("zt_audit_verify_ok", "1 when the last zt audit verify found the trail intact, 0 when tampered or unreadable", o.report?.ok ? 1 : 0);
  gauge("zt_audit_verify_problems", "Problems the last zt audit verify found (first broken link per chain, checkpoint problems; 1 when unreadable)", o.report ? o.report.broken.length + o.report.problems.length : 1);
  gauge("zt_audit_verify_records", "Records the last zt audit verify checked", o.report?.records ?? 0);
  gauge("zt_audit_verify_last_run_timestamp_seconds", "When zt audit verify last ran (Unix time)", Math.floor(now.getTime() / 1000));
  return registry;
}

export async function writeVerifyMetrics(o: VerifyOutcome, to: { file: string | null; pushgateway: string | null }): Promise<void> {
  if (!to.file && !to.pushgateway) return;
  const registry = verifyRegistry(o);
  if (to.file) {
    // Atomic replace: the collector never reads a half-written file.
    const tmp = `${to.file}.${process.pid}.tmp`;
    await writeFile(tmp, await registry.metrics(), { mode: 0o644 });
    await rename(tmp, to.file);
  }
  if (to.pushgateway) await new Pushgateway(to.pushgateway, {}, registry).push({ jobName: "zt_audit_verify" });
}
