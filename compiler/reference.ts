// The reference evaluator: a plain, obviously-correct reading of docs/policy-language.md.
// It scans every rule; it exists to be compared with the Wasm module, not to be fast.
import {
  allRules,
  type OperatorRequest,
  type OperatorRule,
  type PolicySet,
  Reason,
  type ReasonCode,
  type RolloutMode,
  type ServiceRequest,
  type ServiceRule,
  type Verdict,
} from "./model.js";
import { parseSpiffeId, patternMatches } from "./spiffe.js";

function verdict(allow: boolean, reason: ReasonCode, rule: number, rollout: RolloutMode | null = null): Verdict {
  return { allow, reason, rule, rollout };
}

export function rolloutReference(set: PolicySet, destination: string): RolloutMode | null {
  const dst = parseSpiffeId(destination);
  if (!dst.ok) return null;
  let mode: RolloutMode | null = null;
  for (const p of set.policies) {
    if (p.kind !== "ServiceAccessPolicy") continue;
    for (const e of p.rollout) {
      if (!patternMatches(e.destination, dst.value)) continue;
      if (e.mode === "enforce") return "enforce";
      mode = "observe";
    }
  }
  return mode;
}

export function evaluateServiceReference(set: PolicySet, req: ServiceRequest): Verdict {
  const src = parseSpiffeId(req.source);
  const dst = parseSpiffeId(req.destination);
  const portOk = Number.isInteger(req.port) && req.port >= 0 && req.port <= 65535;
  if (!src.ok || !dst.ok || !portOk) return verdict(false, Reason.INVALID_REQUEST, -1, rolloutReference(set, req.destination));
  const rollout = rolloutReference(set, req.destination);
  let declared = false;
  let firstAllow = -1;
  let firstDeny = -1;
  allRules(set).forEach((rule, index) => {
    if (!("from" in rule)) return;
    const r = rule as ServiceRule;
    if (!patternMatches(r.from, src.value)) return;
    declared = true;
    const hit = r.to.some((t) => patternMatches(t.spiffe, dst.value) && t.ports.some((p) => req.port >= p.lo && req.port <= p.hi));
    if (!hit) return;
    if (r.action === "DENY" && firstDeny < 0) firstDeny = index;
    if (r.action === "ALLOW" && firstAllow < 0) firstAllow = index;
  });
  if (firstDeny >= 0) return verdict(false, Reason.DENIED_BY_RULE, firstDeny, rollout);
  if (firstAllow >= 0) return verdict(true, Reason.ALLOWED_BY_RULE, firstAllow, rollout);
  return verdict(false, declared ? Reason.DEFAULT_DENY : Reason.SOURCE_UNDECLARED, -1, rollout);
}

export function evaluateOperatorReference(set: PolicySet, req: OperatorRequest): Verdict {
  if (req.service.length === 0 || req.action.length === 0) return verdict(false, Reason.INVALID_REQUEST, -1);
  let declared = false;
  let firstFailed = -1;
  let failedReason: ReasonCode = Reason.DEFAULT_DENY;
  const rules = allRules(set);
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index]!;
    if (!("role" in rule)) continue;
    const r = rule as OperatorRule;
    if (!req.roles.includes(r.role)) continue;
    declared = true;
    const hit = r.targets.some(
      (t) => (t.service === "*" || t.service === req.service) && t.actions.some((a) => a === "*" || a === req.action),
    );
    if (!hit) continue;
    let failed: ReasonCode | null = null;
    if (r.conditions.requireMFA && !req.mfa) failed = Reason.CONDITION_MFA;
    else if (r.conditions.requireIncident && !req.incidentActive) failed = Reason.CONDITION_INCIDENT;
    if (failed === null) return verdict(true, Reason.ALLOWED_BY_RULE, index);
    if (firstFailed < 0) {
      firstFailed = index;
      failedReason = failed;
    }
  }
  if (firstFailed >= 0) return verdict(false, failedReason, firstFailed);
  return verdict(false, declared ? Reason.DEFAULT_DENY : Reason.ROLE_UNDECLARED, -1);
}

/**
 * Scopes an agent's token must carry to reach `destination`: the union of every matching
 * `agentScopes` entry of every policy, sorted; null when no entry matches (no agent access).
 */
export function requiredScopesReference(set: PolicySet, destination: string): string[] | null {
  const dst = parseSpiffeId(destination);
  if (!dst.ok) return null;
  let found = false;
  const scopes = new Set<string>();
  for (const p of set.policies) {
    if (p.kind !== "ServiceAccessPolicy") continue;
    for (const e of p.agentScopes) {
      if (!patternMatches(e.destination, dst.value)) continue;
      found = true;
      for (const s of e.scopes) scopes.add(s);
    }
  }
  return found ? [...scopes].sort() : null;
}
