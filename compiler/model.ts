// The validated policy model: what the parser produces and the compiler, the reference
// evaluator and the NetworkPolicy mirror consume. Plain data, no behaviour.
import type { SpiffePattern } from "./spiffe.js";

export const API_VERSION = "zt.hanzo.ai/v1";
export type PolicyKind = "ServiceAccessPolicy" | "OperatorAccessPolicy";
export type RuleAction = "ALLOW" | "DENY";
export type RolloutMode = "observe" | "enforce";

/** Where a piece of the model came from, for error messages and `GET /v1/policies`. */
export interface SourceRef {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** An inclusive port range; a single port has lo === hi. Omitted ports = 0..65535. */
export interface PortRange {
  readonly lo: number;
  readonly hi: number;
}

export interface ServiceTarget {
  readonly spiffe: SpiffePattern;
  readonly ports: readonly PortRange[];
}

export interface ServiceRule {
  /** `<metadata.name>/<rule name>` or `<metadata.name>/rule-N`, N counted from 1. */
  readonly id: string;
  readonly name: string | null;
  readonly action: RuleAction;
  readonly from: SpiffePattern;
  readonly to: readonly ServiceTarget[];
  readonly at: SourceRef;
}

/** Per-destination rollout (HIP-0044 "Rollout Strategy"): which destinations are enforced. */
export interface RolloutEntry {
  readonly destination: SpiffePattern;
  readonly mode: RolloutMode;
  readonly at: SourceRef;
}

/** Scopes an agent's JWT must carry to reach destinations matching a pattern (issue 7). */
export interface AgentScopeEntry {
  readonly destination: SpiffePattern;
  readonly scopes: readonly string[];
  readonly at: SourceRef;
}

export interface ServiceAccessPolicy {
  readonly kind: "ServiceAccessPolicy";
  readonly name: string;
  readonly rules: readonly ServiceRule[];
  readonly defaultAction: "DENY";
  readonly rollout: readonly RolloutEntry[];
  readonly agentScopes: readonly AgentScopeEntry[];
  readonly source: string;
}

export interface OperatorTarget {
  /** A service name, or "*" for every service. */
  readonly service: string;
  /** Action names; "*" means every action. */
  readonly actions: readonly string[];
}

export interface OperatorConditions {
  readonly requireMFA: boolean;
  readonly requireIncident: boolean;
}

export interface OperatorRule {
  readonly id: string;
  readonly name: string | null;
  readonly role: string;
  readonly targets: readonly OperatorTarget[];
  readonly conditions: OperatorConditions;
  readonly at: SourceRef;
}

export interface OperatorAccessPolicy {
  readonly kind: "OperatorAccessPolicy";
  readonly name: string;
  readonly rules: readonly OperatorRule[];
  readonly source: string;
}

export type Policy = ServiceAccessPolicy | OperatorAccessPolicy;

/**
 * A policy set in canonical order: policies sorted by name (names are unique across
 * kinds), rules in document order. The global rule index used by the module and the
 * reference evaluator is the position in `rules()` below.
 */
export interface PolicySet {
  readonly policies: readonly Policy[];
}

/** Every rule of the set with its global index (canonical order). */
export function allRules(set: PolicySet): Array<ServiceRule | OperatorRule> {
  const out: Array<ServiceRule | OperatorRule> = [];
  for (const p of set.policies) for (const r of p.rules) out.push(r);
  return out;
}

export function canonicalize(policies: readonly Policy[]): PolicySet {
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { policies: sorted };
}

// ---- Requests and decisions (shared by the reference evaluator and the runtime) ----

export interface ServiceRequest {
  readonly source: string;
  readonly destination: string;
  readonly port: number;
}

export interface OperatorRequest {
  readonly roles: readonly string[];
  readonly mfa: boolean;
  /** True when the request names an incident that is active right now. */
  readonly incidentActive: boolean;
  readonly service: string;
  readonly action: string;
}

/** Reason codes: stable numbers shared with the Wasm module (see docs/module-format.md). */
export const Reason = {
  ALLOWED_BY_RULE: 0,
  DENIED_BY_RULE: 1,
  DEFAULT_DENY: 2,
  SOURCE_UNDECLARED: 3,
  CONDITION_MFA: 4,
  CONDITION_INCIDENT: 5,
  INVALID_REQUEST: 6,
  ROLE_UNDECLARED: 7,
  INTERNAL_ERROR: 8,
} as const;
export type ReasonCode = (typeof Reason)[keyof typeof Reason];

export const REASON_NAMES: Record<ReasonCode, string> = {
  0: "allowed_by_rule",
  1: "denied_by_rule",
  2: "default_deny",
  3: "undeclared_service",
  4: "condition_failed:requireMFA",
  5: "condition_failed:requireIncident",
  6: "invalid_request",
  7: "role_undeclared",
  8: "internal_error",
};

/** What an evaluator decides; the host adds version, latency, mode and ids. */
export interface Verdict {
  readonly allow: boolean;
  readonly reason: ReasonCode;
  /** Global rule index, or -1 when no rule is reported. */
  readonly rule: number;
  /** Rollout mode the policy sets for the destination, or null when none matches. */
  readonly rollout: RolloutMode | null;
}
