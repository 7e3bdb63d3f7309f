// A synthetic policy set of N service rules shaped like a real mesh: clusters, namespaces,
// service accounts; a few wildcard and DENY rules; requests half allowed, half denied.
import { stringify } from "yaml";
import type { ServiceRequest } from "../compiler/model.js";

export interface Workload {
  id: string;
}

export function workload(i: number): string {
  return `spiffe://hanzo.ai/k8s-${i % 3}/ns-${i % 97}/sa-${i}`;
}

export interface GeneratedRule {
  from: string;
  to: string;
  port: number;
  deny: boolean;
}

export function generateRules(n: number): GeneratedRule[] {
  const rules: GeneratedRule[] = [];
  for (let i = 0; i < n; i++) {
    const j = (i * 7919 + 13) % Math.max(n, 2);
    rules.push({ from: workload(i), to: workload(j), port: 1000 + (i % 50), deny: i % 20 === 19 });
  }
  return rules;
}

/** The rules as one ServiceAccessPolicy YAML document (plus a wildcard rule). */
export function policyYaml(rules: readonly GeneratedRule[]): string {
  const spec = {
    rules: [
      ...rules.map((r) => ({ ...(r.deny ? { action: "DENY" } : {}), from: { spiffe: r.from }, to: [{ spiffe: r.to, ports: [r.port] }] })),
      { name: "monitoring", from: { spiffe: "spiffe://hanzo.ai/k8s-0/monitoring/*" }, to: [{ spiffe: "spiffe://hanzo.ai/**", ports: ["9090-9100"] }] },
    ],
    defaultAction: "DENY",
  };
  return stringify({ apiVersion: "zt.hanzo.ai/v1", kind: "ServiceAccessPolicy", metadata: { name: "mesh" }, spec });
}

/**
 * Requests: even ones match a rule (allow or deny), odd ones miss (default deny).
 * They are returned as the engine receives them: parsed from JSON. Strings built by template
 * literals are V8 cons strings (a tree of parts), which no real input is; every read of one
 * chases extra pointers, and at 100,000 rules that doubled the cost of every contender that
 * reads the request's bytes.
 */
export function generateRequests(rules: readonly GeneratedRule[], count: number): ServiceRequest[] {
  const out: ServiceRequest[] = [];
  for (let k = 0; k < count; k++) {
    const r = rules[(k * 104729) % rules.length]!;
    out.push(k % 2 === 0 ? { source: r.from, destination: r.to, port: r.port } : { source: r.from, destination: r.to, port: r.port + 1 });
  }
  return JSON.parse(JSON.stringify(out)) as ServiceRequest[];
}
