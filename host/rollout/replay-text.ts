// zt replay's text output and its progress line on a terminal.
import type { ReplayProgress, ReplayReport } from "./replay.js";

const n = (x: number): string => x.toLocaleString("en-US");

export function formatProgress(p: ReplayProgress): string {
  const rate = p.elapsedMs > 0 ? Math.round(p.records / (p.elapsedMs / 1000)) : 0;
  return `zt replay: ${n(p.records)} records, ${Math.floor(p.fraction * 100)}% of the window, ${n(rate)} records/s`;
}

export function formatReplay(r: ReplayReport, candidateLabel: string): string {
  const out: string[] = [];
  out.push(`zt replay: candidate ${candidateLabel} (${r.candidate_version})`);
  out.push(`window: ${r.window.since} .. ${r.window.until}${r.window.destination ? `, destination ${r.window.destination}` : ""}`);
  const { read, replayed, changed, skipped } = r.records;
  out.push(`${n(read)} records read, ${n(replayed)} replayed, ${n(changed)} would be decided differently (skipped: ${n(skipped.agent)} agent, ${n(skipped.engine_failure)} engine failure)`);
  const flows = (title: string, list: ReadonlyArray<{ count: number; first_seen: string; last_seen: string; sample_decision_ids: string[]; candidate: { rule: string | null; reason: string } }>, what: (x: never) => string): void => {
    if (list.length === 0) return;
    const records = list.reduce((s, x) => s + x.count, 0);
    out.push("", `${title} (${n(list.length)} flow${list.length === 1 ? "" : "s"}, ${n(records)} record${records === 1 ? "" : "s"})`);
    for (const f of list) {
      out.push(`  ${what(f as never)}`);
      out.push(`    ${n(f.count)} record${f.count === 1 ? "" : "s"}, ${f.first_seen} .. ${f.last_seen}; candidate: ${f.candidate.reason}${f.candidate.rule ? ` (${f.candidate.rule})` : ""}`);
      out.push(`    e.g. ${f.sample_decision_ids.join(", ")}`);
    }
  };
  const svc = (f: { source: string; destination: string; port: number }): string => `${f.source} -> ${f.destination}:${f.port}`;
  const op = (f: { roles: string[]; service: string; action: string; mfa: boolean; incident_active: boolean }): string =>
    `roles [${f.roles.join(", ")}] ${f.action} on ${f.service}${f.mfa ? ", mfa" : ""}${f.incident_active ? ", incident active" : ""}`;
  flows("service requests, ALLOW -> DENY", r.service.allow_to_deny, svc as (x: never) => string);
  flows("service requests, DENY -> ALLOW", r.service.deny_to_allow, svc as (x: never) => string);
  flows("operator requests, ALLOW -> DENY", r.operator.allow_to_deny, op as (x: never) => string);
  flows("operator requests, DENY -> ALLOW", r.operator.deny_to_allow, op as (x: never) => string);
  if (r.flows_not_kept > 0) out.push("", `${n(r.flows_not_kept)} more changed flows not listed (raise --max-flows)`);
  if (changed === 0) out.push("", "no decision in the window would change");
  return out.join("\n") + "\n";
}
