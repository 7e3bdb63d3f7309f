// Which namespaces of the cluster the mirror isolates with a default deny: every namespace a
// service rule's pattern names literally for this cluster (ALLOW or DENY, whatever the other
// side of the rule maps to), except the system namespaces. Computed from the patterns alone,
// before anything else, so that no fate of a rule (another side that names no pod, a foreign
// trust domain, a port that cannot be expressed) can leave a named namespace open.
import type { PolicySet, ServiceRule } from "../model.js";
import type { SpiffePattern } from "../spiffe.js";
import { isDnsLabel } from "./project.js";

export interface NamespaceSets {
  /** Namespaces that get `zt-default-deny` (sorted). */
  readonly governed: readonly string[];
  /** System namespaces the policy names, each with the first rule naming it (by namespace). */
  readonly systemNamed: readonly { readonly namespace: string; readonly rule: ServiceRule }[];
}

/** The namespace `p` names literally in `cluster` of `trustDomain`, if it names one. */
export function literalNamespace(p: SpiffePattern, trustDomain: string, cluster: string): string | null {
  if (p.trustDomain !== trustDomain || p.segments.length < 2) return null;
  const c = p.segments[0]!;
  const ns = p.segments[1]!;
  // The cluster segment must be this cluster or `*`; a `**` there reaches no literal namespace.
  const inCluster = c.kind === "star" || (c.kind === "literal" && c.value === cluster);
  if (!inCluster || ns.kind !== "literal") return null;
  // A name that cannot be a Kubernetes namespace names none.
  return isDnsLabel(ns.value) ? ns.value : null;
}

export function namespaceSets(set: PolicySet, trustDomain: string, cluster: string, systemNamespaces: readonly string[]): NamespaceSets {
  const governed = new Set<string>();
  const systemNamed = new Map<string, ServiceRule>();
  const system = new Set(systemNamespaces);
  for (const policy of set.policies) {
    if (policy.kind !== "ServiceAccessPolicy") continue;
    for (const rule of policy.rules) {
      for (const p of [rule.from, ...rule.to.map((t) => t.spiffe)]) {
        const ns = literalNamespace(p, trustDomain, cluster);
        if (ns === null) continue;
        if (!system.has(ns)) governed.add(ns);
        else if (!systemNamed.has(ns)) systemNamed.set(ns, rule);
      }
    }
  }
  return {
    governed: [...governed].sort(),
    systemNamed: [...systemNamed].sort(([a], [b]) => (a < b ? -1 : 1)).map(([namespace, rule]) => ({ namespace, rule })),
  };
}
