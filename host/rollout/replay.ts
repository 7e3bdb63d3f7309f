// Replay: the audit trail's decisions in a window, decided again by a candidate's compiled
// module, and every decision that would change, aggregated by flow with counts, first/last
// seen and sample decision ids. It streams the trail a chunk at a time (trail.ts: records of a
// chunk come grouped by request, and a request is decided once); what it keeps grows with the
// number of distinct flows that change, never with the number of records.
import type { Sql } from "postgres";
import { Reason, REASON_NAMES, type Verdict } from "../../compiler/model.js";
import type { PolicyRuntime } from "../engine/runtime.js";
import { NoRecordsError, readTrail, SAMPLES, type SeenFlow, type TrailGroup, type TrailWindow } from "./trail.js";

export type Direction = "allow_to_deny" | "deny_to_allow";

export interface ServiceFlowChange extends SeenFlow {
  sample_decision_ids: string[];
  /** What the candidate decides for this flow. */
  candidate: { rule: string | null; reason: string };
}

export interface OperatorFlowChange {
  roles: string[];
  service: string;
  action: string;
  mfa: boolean;
  incident_active: boolean;
  count: number;
  first_seen: string;
  last_seen: string;
  sample_decision_ids: string[];
  candidate: { rule: string | null; reason: string };
}

export interface ReplayReport {
  candidate_version: string;
  window: { since: string; until: string; destination: string | null };
  records: {
    read: number;
    replayed: number;
    changed: number;
    /** Not replayable: agent decisions (the token is not in the trail), engine failures (no policy decided them). */
    skipped: { agent: number; engine_failure: number };
  };
  service: Record<Direction, ServiceFlowChange[]>;
  operator: Record<Direction, OperatorFlowChange[]>;
  /** Distinct changed flows not kept because `maxFlows` was reached (their records are counted in `changed`). */
  flows_not_kept: number;
  duration_ms: number;
  records_per_s: number;
}

export interface ReplayProgress {
  records: number;
  /** Where in the window the replay is, 0..1, by timestamp. */
  fraction: number;
  elapsedMs: number;
}

export interface ReplayOptions {
  /** Records per chunk read from the trail (trail.ts). */
  pageSize?: number;
  /** Most distinct changed flows kept (default 100,000). */
  maxFlows?: number;
  onProgress?: (p: ReplayProgress) => void;
  /** How often onProgress is called at most (default 250 ms). */
  progressEveryMs?: number;
}

/** Reasons the engine gives when no policy decided (decide.ts): nothing to compare with. */
const ENGINE_FAILURES = new Set(["internal_error", "audit_unavailable"]);
/** Verdicts memoised per distinct request; cleared when it reaches this size. */
const MEMO_LIMIT = 1_000_000;

interface Flow {
  first: string;
  last: string;
  count: number;
  samples: string[];
  verdict: Verdict;
  group: TrailGroup;
}

/** A referenced incident is taken as active unless the recorded decision says it was not (docs/rollout.md). */
function incidentActive(g: TrailGroup): boolean {
  return g.incident && g.reason !== REASON_NAMES[Reason.CONDITION_INCIDENT];
}

/** The request a group's decisions were about, as a memo key; null for agent decisions. */
function requestKey(g: TrailGroup): string | null {
  if (g.source !== null && g.destination !== null && g.port !== null) return `s\n${g.source}\n${g.destination}\n${g.port}`;
  if (g.service !== null && g.action !== null) return `o\n${(g.roles ?? []).join(",")}\n${g.service}\n${g.action}\n${g.mfa ? 1 : 0}${incidentActive(g) ? 1 : 0}`;
  return null;
}

export async function replay(sql: Sql, window: TrailWindow, candidate: PolicyRuntime, opts: ReplayOptions = {}): Promise<ReplayReport> {
  const maxFlows = opts.maxFlows ?? 100_000;
  const every = opts.progressEveryMs ?? 250;
  const t0 = performance.now();
  const span = Math.max(1, window.until.getTime() - window.since.getTime());
  const flows = new Map<string, Flow>();
  let memo = new Map<string, Verdict>();
  let read = 0;
  let replayed = 0;
  let changed = 0;
  let notKept = 0;
  const skipped = { agent: 0, engine_failure: 0 };
  let lastProgress = t0;

  const decide = (g: TrailGroup, key: string): Verdict => {
    let v = memo.get(key);
    if (v === undefined) {
      if (memo.size >= MEMO_LIMIT) memo = new Map();
      v =
        g.source !== null
          ? candidate.evaluateService({ source: g.source, destination: g.destination!, port: g.port! })
          : candidate.evaluateOperator({ roles: g.roles ?? [], mfa: g.mfa ?? false, incidentActive: incidentActive(g), service: g.service!, action: g.action! });
      memo.set(key, v);
    }
    return v;
  };

  for await (const chunk of readTrail(sql, window, opts.pageSize)) {
    read += chunk.records;
    for (const g of chunk.groups) {
      if (ENGINE_FAILURES.has(g.reason)) {
        skipped.engine_failure += g.count;
        continue;
      }
      const key = requestKey(g);
      if (key === null) {
        skipped.agent += g.count;
        continue;
      }
      replayed += g.count;
      const v = decide(g, key);
      if (v.allow === g.allow) continue;
      changed += g.count;
      const fk = (g.allow ? "a" : "d") + key;
      const f = flows.get(fk);
      if (f) {
        f.count += g.count;
        if (g.last > f.last) f.last = g.last;
        for (const id of g.samples) if (f.samples.length < SAMPLES) f.samples.push(id);
      } else if (flows.size < maxFlows) flows.set(fk, { first: g.first, last: g.last, count: g.count, samples: [...g.samples], verdict: v, group: g });
      else notKept++;
    }
    const now = performance.now();
    if (opts.onProgress && now - lastProgress >= every) {
      lastProgress = now;
      opts.onProgress({ records: read, fraction: Math.min(1, Math.max(0, (Date.parse(chunk.through) - window.since.getTime()) / span)), elapsedMs: now - t0 });
    }
  }
  if (read === 0) throw new NoRecordsError(window);
  const report: ReplayReport = {
    candidate_version: candidate.version,
    window: { since: window.since.toISOString(), until: window.until.toISOString(), destination: window.destination },
    records: { read, replayed, changed, skipped },
    service: { allow_to_deny: [], deny_to_allow: [] },
    operator: { allow_to_deny: [], deny_to_allow: [] },
    flows_not_kept: notKept,
    duration_ms: 0,
    records_per_s: 0,
  };
  for (const [fk, f] of flows) {
    const dir: Direction = fk[0] === "a" ? "allow_to_deny" : "deny_to_allow";
    const common = { count: f.count, first_seen: f.first, last_seen: f.last, sample_decision_ids: f.samples, candidate: { rule: candidate.ruleId(f.verdict.rule), reason: REASON_NAMES[f.verdict.reason] } };
    const g = f.group;
    if (g.source !== null) report.service[dir].push({ source: g.source, destination: g.destination!, port: g.port!, ...common });
    else report.operator[dir].push({ roles: [...(g.roles ?? [])], service: g.service!, action: g.action!, mfa: g.mfa ?? false, incident_active: incidentActive(g), ...common });
  }
  // Most frequent first: what breaks the most traffic leads; then by first seen.
  for (const list of [report.service.allow_to_deny, report.service.deny_to_allow, report.operator.allow_to_deny, report.operator.deny_to_allow]) {
    list.sort((a, b) => b.count - a.count || (a.first_seen < b.first_seen ? -1 : a.first_seen > b.first_seen ? 1 : 0));
  }
  report.duration_ms = Math.round(performance.now() - t0);
  report.records_per_s = Math.round(read / Math.max(0.001, (performance.now() - t0) / 1000));
  return report;
}
