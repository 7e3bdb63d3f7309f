// From validated requests to decisions: evaluate with one module generation, apply the
// rollout mode, hand every decision to the audit trail before it is returned, and fail
// closed on any internal error (trap, audit refusal) while enforcing.
import { randomUUID } from "node:crypto";
import { Reason, REASON_NAMES, type RolloutMode, type ServiceRequest, type Verdict } from "../../compiler/model.js";
import { AuditUnavailableError, type AuditRecord, type AuditSink } from "../audit/record.js";
import type { AgentItem, EvaluateItem, OperatorItem } from "./evaluate-input.js";
import { agentAuditFields, type AgentDecision } from "../identity/agent.js";
import type { IncidentStore } from "./incidents.js";
import type { Logger } from "../common/logger.js";
import { OPERATOR_SOURCE, OTHER } from "../metrics/labels.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import type { ActivePolicies, PolicyStore } from "./policy-store.js";

/** What an agent decision adds to the answer (agent requests only). */
export interface AgentDecisionInfo {
  /** The token's verified `sub`; null when the token was rejected. */
  subject: string | null;
  /** Scopes the destination requires (null: no policy opens it to agents, or the token was rejected first). */
  required_scopes: readonly string[] | null;
  missing_scopes: readonly string[];
  /** Human-readable why (the verifier's or the scope check's message). */
  detail: string;
}

export interface Decision {
  decision: "ALLOW" | "DENY";
  enforced: boolean;
  policy_matched: string | null;
  reason: string;
  policy_version: string;
  latency_us: number;
  decision_id: string;
  /** Present on agent decisions only. */
  agent?: AgentDecisionInfo;
}

/** Which decisions this replica enforces beyond the policy's own rollout (rollout.ts's RolloutView). */
export interface RolloutModes {
  /** The mode of a service or agent decision to `destination`, given the policy's rollout for it. */
  serviceMode(destination: string, fromPolicy: RolloutMode | null): RolloutMode;
  /** The global mode (operator requests). */
  global(): RolloutMode;
}

export interface DecideDeps {
  readonly sink: AuditSink;
  readonly incidents: IncidentStore;
  readonly metrics: EngineMetrics;
  readonly log: Logger;
  /** Global rollout mode (ZT_MODE); a policy's per-destination rollout overrides it. */
  readonly mode: RolloutMode;
  /** The shared rollout settings (global mode, per-destination modes, canaries); absent: `mode` and the policies alone. */
  readonly rollout?: RolloutModes | null;
  /** `origin` of the audit records (the engine's name). */
  readonly origin: string;
}

export const AUDIT_UNAVAILABLE = "audit_unavailable";

// Records of the same millisecond share one timestamp string (toISOString costs ~0.5 µs).
let isoMs = -1;
let isoText = "";
function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}
const TRAP_VERDICT: Verdict = { allow: false, reason: Reason.INTERNAL_ERROR, rule: -1, rollout: null };
/** Agent items are decided before evaluation (JWT + scopes); this only fills their slot. */
const AGENT_SLOT: Verdict = { allow: false, reason: Reason.INTERNAL_ERROR, rule: -1, rollout: null };
/** The `source` label of agent decisions in the decision metrics (like "operator"). */
export const AGENT_SOURCE = "agent";
/** Longest reason an agent decision gets (the audit trail stores at most 256 characters). */
const MAX_AGENT_REASON = 240;

function evaluateOne(active: ActivePolicies, item: Exclude<EvaluateItem, AgentItem>, deps: DecideDeps, nowMs: number): Verdict {
  try {
    if (item.kind === "service") return active.runtime.evaluateService(item.request);
    return active.runtime.evaluateOperator(operatorRequest(item, deps.incidents, nowMs));
  } catch (e) {
    deps.metrics.error("module_trap");
    deps.log.error("policy module trapped; failing closed", { err: e, version: active.version });
    return TRAP_VERDICT;
  }
}

function operatorRequest(item: OperatorItem, incidents: IncidentStore, nowMs: number) {
  const id = item.operator.incident;
  return {
    roles: item.operator.roles,
    mfa: item.operator.mfa,
    incidentActive: id !== null && incidents.isActive(id, nowMs),
    service: item.target.service,
    action: item.target.action,
  };
}

// A refusing audit trail refuses every decision: log the first, then one summary a second.
let refusalsSuppressed = 0;
let refusalLoggedAt = 0;
function noteAuditRefusal(deps: DecideDeps, err: unknown, enforced: boolean): void {
  const now = Date.now();
  if (now - refusalLoggedAt < 1000) {
    refusalsSuppressed++;
    return;
  }
  deps.log.warn("audit sink refused decisions", { err, enforced, more_since_last_line: refusalsSuppressed });
  refusalLoggedAt = now;
  refusalsSuppressed = 0;
}

/** Hands a record to the audit sink; false (counted and logged) when the sink refused it. */
function appendAudited(deps: DecideDeps, record: AuditRecord, enforced: boolean): boolean {
  try {
    deps.sink.append(record);
    return true;
  } catch (e) {
    deps.metrics.error(e instanceof AuditUnavailableError ? "audit_unavailable" : "internal");
    noteAuditRefusal(deps, e, enforced);
    return false;
  }
}

/** Evaluates every item with the same module generation (`active`), in order. */
export function evaluateItems(active: ActivePolicies, items: readonly EvaluateItem[], deps: DecideDeps, nowMs: number): Verdict[] {
  if (items.length === 1) return [items[0]!.kind === "agent" ? AGENT_SLOT : evaluateOne(active, items[0]!, deps, nowMs)];
  // Service requests go to the module in one call; operator requests (rare in bulk) one by
  // one; agent requests were decided before (decideAgents) and only get a placeholder.
  const service: ServiceRequest[] = [];
  const where: number[] = [];
  const out = new Array<Verdict>(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it.kind === "service") {
      service.push(it.request);
      where.push(i);
    } else if (it.kind === "agent") out[i] = AGENT_SLOT;
    else out[i] = evaluateOne(active, it, deps, nowMs);
  }
  if (service.length > 0) {
    let verdicts: Verdict[] | null = null;
    try {
      verdicts = active.runtime.evaluateServiceBatch(service);
    } catch (e) {
      // One bad request must not deny its neighbours: retry one by one to isolate it.
      deps.log.warn("batch evaluation trapped; evaluating one by one", { err: e, version: active.version });
    }
    for (let j = 0; j < where.length; j++) {
      out[where[j]!] = verdicts !== null ? verdicts[j]! : evaluateOne(active, items[where[j]!] as Exclude<EvaluateItem, AgentItem>, deps, nowMs);
    }
  }
  return out;
}

/**
 * Turns verdicts into decisions and audit records; every record is appended before the
 * caller answers. `latencyUs` is the evaluation time per decision (a batch's is amortised).
 */
export function finishDecisions(
  active: ActivePolicies,
  items: readonly EvaluateItem[],
  verdicts: readonly Verdict[],
  latencyUs: number,
  caller: string | null,
  deps: DecideDeps,
  nowMs: number,
  agents: ReadonlyArray<AgentDecision | undefined> | null = null,
): Decision[] {
  const timestamp = isoAt(nowMs);
  const out = new Array<Decision>(items.length);
  const labels = active.labels;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (item.kind === "agent") {
      out[i] = finishAgent(active, item, agents?.[i], latencyUs, caller, deps, timestamp);
      continue;
    }
    const v = verdicts[i]!;
    const r = deps.rollout;
    const mode = !r ? (v.rollout ?? deps.mode) : item.kind === "service" ? r.serviceMode(item.destination.spiffe_id, v.rollout) : r.global();
    const enforced = mode === "enforce";
    let allow = v.allow;
    let reason = REASON_NAMES[v.reason];
    let matched = v.rule >= 0 ? active.runtime.ruleId(v.rule) : null;
    const decisionId = randomUUID();
    const record: AuditRecord = {
      timestamp,
      decision: allow ? "ALLOW" : "DENY",
      source: item.kind === "service" ? item.source : null,
      destination: item.kind === "service" ? item.destination : null,
      operator: item.kind === "operator" ? item.operator : null,
      target: item.kind === "operator" ? item.target : null,
      policy_matched: matched,
      latency_us: latencyUs,
      decision_id: decisionId,
      enforced,
      reason,
      policy_version: active.version,
      origin: deps.origin,
      caller,
    };
    if (!appendAudited(deps, record, enforced) && enforced) {
      // An unaudited decision must not let traffic through while enforcing.
      allow = false;
      reason = AUDIT_UNAVAILABLE;
      matched = null;
    }
    const src = item.kind === "service" ? labels.workload(item.source.spiffe_id) : OPERATOR_SOURCE;
    const dst = item.kind === "service" ? labels.workload(item.destination.spiffe_id) : labels.service(item.target.service);
    deps.metrics.decision(allow, src, dst);
    if (!allow && !enforced) deps.metrics.observedDeny(src, dst);
    out[i] = {
      decision: allow ? "ALLOW" : "DENY",
      enforced,
      policy_matched: matched,
      reason,
      policy_version: active.version,
      latency_us: latencyUs,
      decision_id: decisionId,
    };
  }
  return out;
}

/**
 * The reason an agent decision reports and audits: the identity layer's code, with the
 * missing scopes appended for a scope failure ("agent_scope_missing:chat:write,llm:invoke"),
 * so the audit trail says exactly what the token lacked. Scopes are policy tokens
 * (letters, digits, ".", "_", ":", "-"), so the reason stays JSON-safe.
 */
export function agentReason(d: AgentDecision): string {
  if (d.reason !== "agent_scope_missing" || d.missingScopes.length === 0) return d.reason;
  let out = "agent_scope_missing:";
  for (let i = 0; i < d.missingScopes.length; i++) {
    const s = d.missingScopes[i]!;
    if (out.length + s.length + 1 > MAX_AGENT_REASON) return out + (i === 0 ? "" : ",") + `+${d.missingScopes.length - i}`;
    out += (i === 0 ? "" : ",") + s;
  }
  return out;
}

function finishAgent(
  active: ActivePolicies,
  item: AgentItem,
  d: AgentDecision | undefined,
  latencyUs: number,
  caller: string | null,
  deps: DecideDeps,
  timestamp: string,
): Decision {
  // Observe/enforce follows the destination's rollout, like service requests to it.
  let rollout: RolloutMode | null = null;
  try {
    rollout = active.runtime.rolloutFor(item.destination.spiffe_id);
  } catch (e) {
    deps.metrics.error("module_trap");
    deps.log.error("policy module trapped reading the rollout; using ZT_MODE", { err: e, version: active.version });
  }
  const enforced = (deps.rollout ? deps.rollout.serviceMode(item.destination.spiffe_id, rollout) : (rollout ?? deps.mode)) === "enforce";
  const decisionId = randomUUID();
  // No decision for this slot cannot happen; if it ever does, it is a deny, never an allow.
  const missing = d === undefined;
  let allow = !missing && d.allow;
  let reason = missing ? REASON_NAMES[Reason.INTERNAL_ERROR] : agentReason(d);
  const fields = missing
    ? { decision: "DENY" as const, source: null, destination: item.destination, operator: null, target: null, policy_matched: null, caller }
    : agentAuditFields(d, caller);
  const record: AuditRecord = {
    ...fields,
    timestamp,
    reason,
    latency_us: latencyUs,
    decision_id: decisionId,
    enforced,
    policy_version: active.version,
    origin: deps.origin,
  };
  if (!appendAudited(deps, record, enforced) && enforced) {
    allow = false;
    reason = AUDIT_UNAVAILABLE;
  }
  const dst = active.labels.workload(item.destination.spiffe_id);
  deps.metrics.decision(allow, AGENT_SOURCE, dst);
  if (!allow && !enforced) deps.metrics.observedDeny(AGENT_SOURCE, dst);
  return {
    decision: allow ? "ALLOW" : "DENY",
    enforced,
    policy_matched: null,
    reason,
    policy_version: active.version,
    latency_us: latencyUs,
    decision_id: decisionId,
    agent: {
      subject: d?.subject ?? null,
      required_scopes: d?.requiredScopes ?? null,
      missing_scopes: d?.missingScopes ?? [],
      detail: d?.detail ?? "no agent decision was made for this request",
    },
  };
}

/**
 * The answer when evaluation itself failed unexpectedly (not a module trap, which
 * evaluateItems handles): every item is a DENY with reason internal_error, audited if the
 * sink still takes it. Enforcement follows the global mode (no verdict, so no rollout).
 */
export function internalErrorDecisions(version: string, items: readonly EvaluateItem[], caller: string | null, deps: DecideDeps, nowMs: number): Decision[] {
  deps.metrics.error("internal");
  const enforced = (deps.rollout ? deps.rollout.global() : deps.mode) === "enforce";
  const timestamp = isoAt(nowMs);
  const reason = REASON_NAMES[Reason.INTERNAL_ERROR];
  return items.map((item) => {
    const decisionId = randomUUID();
    try {
      deps.sink.append({
        timestamp,
        decision: "DENY",
        source: item.kind === "service" ? item.source : null,
        // Agent requests are recorded by their destination alone (no source workload).
        destination: item.kind === "operator" ? null : item.destination,
        operator: item.kind === "operator" ? item.operator : null,
        target: item.kind === "operator" ? item.target : null,
        policy_matched: null,
        latency_us: 0,
        decision_id: decisionId,
        enforced,
        reason,
        policy_version: version,
        origin: deps.origin,
        caller,
      });
    } catch {
      // Already failing closed; the metric above counts it.
    }
    return { decision: "DENY", enforced, policy_matched: null, reason, policy_version: version, latency_us: 0, decision_id: decisionId };
  });
}

/**
 * The decision core of every front door (POST /v1/evaluate, the operator proxy): evaluates
 * validated items with one module generation, records the evaluation latency, and turns the
 * verdicts into audited decisions; an unexpected error makes every item a DENY (internal_error).
 * `t0` is when evaluation started (performance.now()); `context` names the request in the log.
 */
export function decideItems(
  active: ActivePolicies,
  items: readonly EvaluateItem[],
  caller: string | null,
  deps: DecideDeps,
  t0: number,
  nowMs: number,
  agents: ReadonlyArray<AgentDecision | undefined> | null,
  context: Readonly<Record<string, unknown>>,
): Decision[] {
  try {
    const verdicts = evaluateItems(active, items, deps, nowMs);
    const t1 = performance.now();
    const perDecisionMs = (t1 - t0) / items.length;
    const latencyUs = Math.round(perDecisionMs * 1000);
    if (items.length === 1) deps.metrics.latency(perDecisionMs / 1000, t1);
    else deps.metrics.latencyMany(perDecisionMs / 1000, items.length, t1);
    return finishDecisions(active, items, verdicts, latencyUs, caller, deps, nowMs, agents);
  } catch (e) {
    deps.log.error("evaluation failed; failing closed", { err: e, ...context, version: active.version });
    return internalErrorDecisions(active.version, items, caller, deps, nowMs);
  }
}

/** What deciding one operator request needs beyond DecideDeps. */
export interface OperatorDecideDeps extends DecideDeps {
  readonly store: PolicyStore;
  /** Longest wait for room in the audit queue (AuditSink.admit) before the decision fails closed. */
  readonly auditWaitMs: number;
}

/** The version recorded when no module is loaded (only during start-up). */
export const NO_MODULE_VERSION = "none";

/**
 * One operator request (the access proxy's), decided and audited exactly as POST /v1/evaluate
 * decides one: the same backpressure, module generation, evaluation, audit hand-off and fail-closed
 * rules. `caller` names the asker in the audit record (e.g. "proxy:<route>").
 */
export async function decideOperator(deps: OperatorDecideDeps, item: OperatorItem, caller: string, context: Readonly<Record<string, unknown>> = {}): Promise<Decision> {
  let t0 = performance.now();
  const room = deps.auditWaitMs > 0 && deps.sink.admit ? deps.sink.admit(1, deps.auditWaitMs) : null;
  if (room !== null) {
    await room;
    t0 = performance.now();
  }
  const active = deps.store.current();
  if (active === null) return internalErrorDecisions(NO_MODULE_VERSION, [item], caller, deps, Date.now())[0]!;
  return decideItems(active, [item], caller, deps, t0, Date.now(), null, context)[0]!;
}

/**
 * An operator request refused before evaluation (no valid credential, an unknown host, a
 * forged token...): a DENY with `reason`, audited like every decision and counted with them. It
 * is always enforced: observe mode concerns what the policy decides, never who is asking.
 */
export function refuseOperator(deps: DecideDeps & { readonly store: PolicyStore }, item: OperatorItem, reason: string, caller: string | null): Decision {
  const version = deps.store.current()?.version ?? NO_MODULE_VERSION;
  const nowMs = Date.now();
  const decisionId = randomUUID();
  let finalReason = reason;
  const audited = appendAudited(
    deps,
    {
      timestamp: isoAt(nowMs),
      decision: "DENY",
      source: null,
      destination: null,
      operator: item.operator,
      target: item.target,
      policy_matched: null,
      latency_us: 0,
      decision_id: decisionId,
      enforced: true,
      reason,
      policy_version: version,
      origin: deps.origin,
      caller,
    },
    true,
  );
  if (!audited) finalReason = AUDIT_UNAVAILABLE;
  deps.metrics.decision(false, OPERATOR_SOURCE, deps.store.current()?.labels.service(item.target.service) ?? OTHER);
  return { decision: "DENY", enforced: true, policy_matched: null, reason: finalReason, policy_version: version, latency_us: 0, decision_id: decisionId };
}
