// Label values of the decision metrics, bounded by the policy set: a SPIFFE ID becomes
// itself when a policy names it literally, else the text of the first declared wildcard
// pattern it matches, else "other". Operator targets are named services or "other".
// So the values are drawn from the policy text, never from what callers send.
import type { PolicySet } from "../../compiler/model.js";
import { parseSpiffeId, patternMatches, type SpiffePattern } from "../../compiler/spiffe.js";

export const OTHER = "other";
export const OPERATOR_SOURCE = "operator";

const CACHE_MAX = 4096;

/**
 * What the labels are drawn from, as plain data: computed where the policy set is (the build
 * thread), so the serving thread never walks the whole set.
 */
export interface LabelParts {
  literal: string[];
  wildcards: SpiffePattern[];
  services: string[];
}

export function labelParts(set: PolicySet): LabelParts {
  const parts: LabelParts = { literal: [], wildcards: [], services: [] };
  const seen = new Set<string>();
  const services = new Set<string>();
  const addPattern = (p: SpiffePattern): void => {
    if (seen.has(p.text)) return;
    seen.add(p.text);
    if (p.segments.every((s) => s.kind === "literal")) parts.literal.push(p.text);
    else parts.wildcards.push(p);
  };
  for (const policy of set.policies) {
    if (policy.kind === "ServiceAccessPolicy") {
      for (const rule of policy.rules) {
        addPattern(rule.from);
        for (const t of rule.to) addPattern(t.spiffe);
      }
      for (const r of policy.rollout) addPattern(r.destination);
    } else {
      for (const rule of policy.rules) for (const t of rule.targets) if (t.service !== "*") services.add(t.service);
    }
  }
  parts.services = [...services];
  return parts;
}

export class MetricLabels {
  private readonly literal: Set<string>;
  private readonly wildcards: readonly SpiffePattern[];
  private readonly services: Set<string>;
  private readonly cache = new Map<string, string>();

  constructor(from: PolicySet | LabelParts) {
    const parts = "policies" in from ? labelParts(from) : from;
    this.literal = new Set(parts.literal);
    this.wildcards = parts.wildcards;
    this.services = new Set(parts.services);
  }

  /** The label for a (valid) SPIFFE ID. */
  workload(id: string): string {
    if (this.literal.has(id)) return id;
    const hit = this.cache.get(id);
    if (hit !== undefined) return hit;
    let label = OTHER;
    const parsed = parseSpiffeId(id);
    if (parsed.ok) {
      for (const p of this.wildcards) {
        if (patternMatches(p, parsed.value)) {
          label = p.text;
          break;
        }
      }
    }
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(id, label);
    return label;
  }

  /** The label for an operator request's target service. */
  service(name: string): string {
    return this.services.has(name) ? name : OTHER;
  }
}
