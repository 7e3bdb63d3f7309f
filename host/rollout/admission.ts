// The Phase 4 admission gate (HIP-0044: "new services must submit a policy declaration before
// deployment"): a Kubernetes validating webhook's decision, pure. An AdmissionReview
// (admission.k8s.io/v1) for a Pod or a workload that creates pods is refused when the SPIFFE
// identity its pods will run as, spiffe://<trust domain>/<cluster>/<namespace>/<service
// account>, is named by no ServiceAccessPolicy rule: neither as a caller (a rule's `from`,
// exactly the sources the engine would otherwise deny as `undeclared_service`) nor as a
// destination (a `to` entry). The answer carries the request's uid, as the contract requires.
import type { PolicySet } from "../../compiler/model.js";
import { formatSpiffeId, parseSpiffeId, patternMatches, type SpiffeId } from "../../compiler/spiffe.js";

export const ADMISSION_API_VERSION = "admission.k8s.io/v1";

/** Where each workload kind keeps its pod template's spec (apiVersion group/version, path). */
const POD_SPEC_PATHS: Readonly<Record<string, { group: string; path: readonly string[] }>> = {
  Pod: { group: "", path: ["spec"] },
  Deployment: { group: "apps", path: ["spec", "template", "spec"] },
  StatefulSet: { group: "apps", path: ["spec", "template", "spec"] },
  DaemonSet: { group: "apps", path: ["spec", "template", "spec"] },
  ReplicaSet: { group: "apps", path: ["spec", "template", "spec"] },
  Job: { group: "batch", path: ["spec", "template", "spec"] },
  CronJob: { group: "batch", path: ["spec", "jobTemplate", "spec", "template", "spec"] },
};
export const GATED_KINDS = Object.keys(POD_SPEC_PATHS);

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason?: string; message: string };
  warnings?: string[];
}

export interface AdmissionReviewAnswer {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: "AdmissionReview";
  response: AdmissionResponse;
}

/** What the gate decided, for the answer and the log line. */
export type AdmissionOutcome =
  | { kind: "invalid"; status: 400; path: string; message: string }
  | { kind: "answer"; review: AdmissionReviewAnswer; identity: string | null; dryRun: boolean; resource: string };

/** The cluster the webhook speaks for: its pods' IDs are spiffe://<trustDomain>/<cluster>/... */
export interface AdmissionScope {
  readonly trustDomain: string;
  readonly cluster: string;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

function answer(uid: string, allowed: boolean, message: string | null, code = 403): AdmissionReviewAnswer {
  const response: AdmissionResponse = { uid, allowed };
  if (!allowed) response.status = { code, reason: code === 403 ? "Forbidden" : "BadRequest", message: message ?? "refused" };
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", response };
}

/** How the service rules of `set` name `id`: as a caller (`from`), as a destination (`to`). */
export function declarations(set: PolicySet, id: SpiffeId): { caller: string[]; destination: string[] } {
  const caller: string[] = [];
  const destination: string[] = [];
  for (const p of set.policies) {
    if (p.kind !== "ServiceAccessPolicy") continue;
    for (const r of p.rules) {
      if (patternMatches(r.from, id)) caller.push(r.id);
      if (r.to.some((t) => patternMatches(t.spiffe, id))) destination.push(r.id);
    }
  }
  return { caller, destination };
}

function podSpecOf(object: Json, path: readonly string[]): Json | null {
  let v: unknown = object;
  for (const k of path) v = isObject(v) ? v[k] : undefined;
  return isObject(v) ? v : null;
}

/** The service account a pod spec runs as: serviceAccountName, the deprecated serviceAccount the API server still fills in, else "default". */
function serviceAccountOf(spec: Json): string {
  if (typeof spec.serviceAccountName === "string" && spec.serviceAccountName !== "") return spec.serviceAccountName;
  if (typeof spec.serviceAccount === "string" && spec.serviceAccount !== "") return spec.serviceAccount;
  return "default";
}

/**
 * The decision for one AdmissionReview body (already parsed from JSON). A body that is not an
 * AdmissionReview v1 with a request uid cannot be answered (the answer must carry the uid):
 * `invalid`, which the route sends as a 400 (the API server then applies the failurePolicy).
 * Anything else is answered; what cannot be judged is refused with the reason (closed).
 */
export function reviewAdmission(body: unknown, set: PolicySet, scope: AdmissionScope): AdmissionOutcome {
  if (!isObject(body)) return { kind: "invalid", status: 400, path: "$", message: "must be an AdmissionReview object" };
  if (body.apiVersion !== ADMISSION_API_VERSION) return { kind: "invalid", status: 400, path: "$.apiVersion", message: `must be "${ADMISSION_API_VERSION}" (admissionReviewVersions: ["v1"]), got ${JSON.stringify(body.apiVersion ?? null)}` };
  if (body.kind !== "AdmissionReview") return { kind: "invalid", status: 400, path: "$.kind", message: `must be "AdmissionReview", got ${JSON.stringify(body.kind ?? null)}` };
  const req = body.request;
  if (!isObject(req)) return { kind: "invalid", status: 400, path: "$.request", message: "must be an object (the review's request)" };
  if (typeof req.uid !== "string" || req.uid === "") return { kind: "invalid", status: 400, path: "$.request.uid", message: "must be the request's uid (a non-empty string): the answer must carry it" };
  const uid = req.uid;
  const dryRun = req.dryRun === true;
  const kindOf = isObject(req.kind) ? req.kind : {};
  const kind = typeof kindOf.kind === "string" ? kindOf.kind : "";
  const group = typeof kindOf.group === "string" ? kindOf.group : "";
  const resource = `${group === "" ? "" : `${group}/`}${kind || "?"}`;
  const done = (allowed: boolean, message: string | null, identity: string | null = null, code = 403): AdmissionOutcome => ({ kind: "answer", review: answer(uid, allowed, message, code), identity, dryRun, resource });

  // Deletes and connects create no pod; a subresource (scale, status, ephemeral containers) changes no service account.
  if (req.operation !== "CREATE" && req.operation !== "UPDATE") return done(true, null);
  if (typeof req.subResource === "string" && req.subResource !== "") return done(true, null);
  const gated = POD_SPEC_PATHS[kind];
  if (!gated || gated.group !== group) return done(false, `zt admission gate: ${resource} is not a kind it judges (${GATED_KINDS.join(", ")}); the webhook's rules should not send it`, null, 400);
  const object = req.object;
  if (!isObject(object)) return done(false, `zt admission gate: request.object must be the ${kind} being admitted`, null, 400);
  const meta = isObject(object.metadata) ? object.metadata : {};
  const namespace = typeof req.namespace === "string" && req.namespace !== "" ? req.namespace : typeof meta.namespace === "string" ? meta.namespace : "";
  if (namespace === "") return done(false, `zt admission gate: the ${kind} has no namespace (request.namespace)`, null, 400);
  const spec = podSpecOf(object, gated.path);
  if (spec === null) return done(false, `zt admission gate: the ${kind} has no pod spec at ${gated.path.join(".")}`, null, 400);
  const sa = serviceAccountOf(spec);
  // An update that keeps the identity deploys no new service (scaling, labels, an image): only
  // a changed service account is judged, so a policy removed later never stops a controller
  // from scaling what already runs (run-time enforcement still denies its requests).
  if (req.operation === "UPDATE" && isObject(req.oldObject)) {
    const old = podSpecOf(req.oldObject, gated.path);
    if (old !== null && serviceAccountOf(old) === sa) return done(true, null);
  }
  const text = `spiffe://${scope.trustDomain}/${scope.cluster}/${namespace}/${sa}`;
  const id = parseSpiffeId(text);
  if (!id.ok) return done(false, `zt admission gate: namespace "${namespace}" and service account "${sa}" make no valid SPIFFE ID (${text}): ${id.error}`, null, 400);
  const name = typeof meta.name === "string" && meta.name !== "" ? meta.name : typeof meta.generateName === "string" ? `${meta.generateName}*` : "(unnamed)";
  const d = declarations(set, id.value);
  if (d.caller.length > 0 || d.destination.length > 0) return done(true, null, formatSpiffeId(id.value));
  const message =
    `zt admission gate (HIP-0044 phase 4): ${kind} ${namespace}/${name} would run as ${formatSpiffeId(id.value)} ` +
    `(namespace "${namespace}", service account "${sa}"), and no ServiceAccessPolicy declares that identity: ` +
    `no rule's "from" (what it may call) and no "to" entry (who may call it) matches it. ` +
    `Declare it in a policy before deploying (zt check, then apply the policy); its requests would otherwise be denied as undeclared_service.`;
  return done(false, message, formatSpiffeId(id.value));
}
