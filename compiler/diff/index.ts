// zt diff: every request whose decision differs between two policy sets, exactly, grouped
// into request classes with one witness each (docs/rollout.md "Exact diff"). Pure: policy
// model in, plain data out; host/cli/diff.ts and the API render it.
import type { PolicySet } from "../model.js";
import { type AgentClass, diffAgents, diffEnforcement, type EnforcementChange } from "./destinations.js";
import { diffOperator, type OperatorClass } from "./operator.js";
import { type ChangeLists, diffService, type ServiceClass } from "./service.js";

export type { AgentClass, ChangeLists, EnforcementChange, OperatorClass, ServiceClass };
export type { NameSet } from "./operator.js";
export type { RegionDesc } from "./regions.js";

export interface PolicyDiff {
  readonly service: ChangeLists<ServiceClass>;
  readonly operator: ChangeLists<OperatorClass>;
  readonly agent: ChangeLists<AgentClass>;
  /** Destinations whose observe/enforce setting changes (decisions unchanged, their effect not). */
  readonly enforcement: readonly EnforcementChange[];
  /** True when no request is decided differently and no enforcement setting changes. */
  readonly identical: boolean;
}

export function diffPolicySets(oldSet: PolicySet, newSet: PolicySet): PolicyDiff {
  const service = diffService(oldSet, newSet);
  const operator = diffOperator(oldSet, newSet);
  const agent = diffAgents(oldSet, newSet);
  const enforcement = diffEnforcement(oldSet, newSet);
  const identical = [service, operator, agent].every((l) => l.allow_to_deny.length === 0 && l.deny_to_allow.length === 0) && enforcement.length === 0;
  return { service, operator, agent, enforcement, identical };
}
