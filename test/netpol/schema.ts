// Validation of Kubernetes objects against the OpenAPI schemas kubernetes-models ships
// (compiled JSON-schema validators, one per kind), plus the API server's own field rules
// for NetworkPolicy that a JSON schema cannot say (names, label syntax, operator/values).
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { NetworkPolicy as NetworkPolicyObject } from "../../compiler/netpol/types.js";

type Validatable = { validate(): void };
type Ctor = new (data: never) => Validatable;

const KINDS: Record<string, Ctor> = {
  "v1/ConfigMap": ConfigMap as unknown as Ctor,
  "v1/Namespace": Namespace as unknown as Ctor,
  "v1/Service": Service as unknown as Ctor,
  "v1/ServiceAccount": ServiceAccount as unknown as Ctor,
  "apps/v1/Deployment": Deployment as unknown as Ctor,
  "apps/v1/StatefulSet": StatefulSet as unknown as Ctor,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy as unknown as Ctor,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget as unknown as Ctor,
};

/** Throws with the schema errors when `obj` is not a valid object of its apiVersion/kind. */
export function validateObject(obj: unknown): void {
  if (!obj || typeof obj !== "object") throw new Error("not an object");
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  const ctor = KINDS[`${String(apiVersion)}/${String(kind)}`];
  if (!ctor) throw new Error(`no schema for ${String(apiVersion)}/${String(kind)}`);
  new ctor(obj as never).validate();
}

// Kubernetes' IsDNS1123Subdomain: dot-separated DNS labels.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function labelKeyOk(k: string): boolean {
  const i = k.lastIndexOf("/");
  const name = i >= 0 ? k.slice(i + 1) : k;
  const prefix = i >= 0 ? k.slice(0, i) : null;
  return name.length <= 63 && LABEL_NAME.test(name) && (prefix === null || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)));
}

type Selector = NonNullable<NetworkPolicyObject["spec"]>["podSelector"];

function checkSelector(sel: Selector, where: string, errs: string[]): void {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (!labelKeyOk(k)) errs.push(`${where}: bad label key ${k}`);
    if (v.length > 63 || !LABEL_VALUE.test(v)) errs.push(`${where}: bad label value ${v}`);
  }
  for (const e of sel.matchExpressions ?? []) {
    if (!labelKeyOk(e.key)) errs.push(`${where}: bad label key ${e.key}`);
    const values = e.values ?? [];
    if (e.operator === "In" || e.operator === "NotIn") {
      if (values.length === 0) errs.push(`${where}: ${e.operator} needs values`);
    } else if (e.operator === "Exists" || e.operator === "DoesNotExist") {
      if (values.length > 0) errs.push(`${where}: ${e.operator} takes no values`);
    } else errs.push(`${where}: unknown operator ${e.operator}`);
    for (const v of values) if (v.length > 63 || !LABEL_VALUE.test(v)) errs.push(`${where}: bad label value ${v}`);
  }
}

/** The API server's NetworkPolicy field validation that the OpenAPI schema leaves out. */
export function apiServerRules(np: NetworkPolicyObject): string[] {
  const errs: string[] = [];
  const name = np.metadata?.name ?? "";
  const ns = np.metadata?.namespace ?? "";
  if (name.length === 0 || name.length > 253 || !DNS_SUBDOMAIN.test(name)) errs.push(`bad name ${name}`);
  if (ns.length === 0 || ns.length > 63 || !DNS_LABEL.test(ns)) errs.push(`bad namespace ${ns}`);
  const spec = np.spec;
  if (!spec) return [...errs, "no spec"];
  checkSelector(spec.podSelector, "podSelector", errs);
  for (const t of spec.policyTypes ?? []) if (t !== "Ingress" && t !== "Egress") errs.push(`bad policyType ${t}`);
  const rules = [...(spec.ingress ?? []).map((r) => ({ peers: r.from ?? [], ports: r.ports ?? [] })), ...(spec.egress ?? []).map((r) => ({ peers: r.to ?? [], ports: r.ports ?? [] }))];
  for (const r of rules) {
    for (const p of r.peers) {
      const kinds = (p.ipBlock ? 1 : 0) + (p.podSelector || p.namespaceSelector ? 1 : 0);
      if (kinds !== 1) errs.push("a peer needs exactly one of ipBlock or selectors");
      if (p.podSelector) checkSelector(p.podSelector, "peer podSelector", errs);
      if (p.namespaceSelector) checkSelector(p.namespaceSelector, "peer namespaceSelector", errs);
      if (p.ipBlock && !/^\d+\.\d+\.\d+\.\d+\/\d+$|:/.test(p.ipBlock.cidr)) errs.push(`bad cidr ${p.ipBlock.cidr}`);
    }
    for (const port of r.ports) {
      if (typeof port.port === "number" && (port.port < 1 || port.port > 65535)) errs.push(`bad port ${port.port}`);
      if (port.endPort !== undefined) {
        if (typeof port.port !== "number") errs.push("endPort needs a numeric port");
        else if (port.endPort < port.port || port.endPort > 65535) errs.push(`bad endPort ${port.endPort}`);
      }
    }
  }
  return errs;
}
