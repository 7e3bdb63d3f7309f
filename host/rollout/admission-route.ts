// POST /v1/admission/{trustDomain}/{cluster}: the Phase 4 admission gate as the kube-apiserver
// calls it (a ValidatingWebhookConfiguration's service path names the cluster it speaks for,
// so one engine serves every cluster of the mesh). Identity rule `own` (route-identity.ts):
// the API server calls webhooks with no client certificate, or one from its own CA, never an
// SVID; the gate changes nothing and answers only whether an identity is declared
// (docs/rollout.md "Admission gate"). The decision itself is admission.ts.
import { Hono } from "hono";
import { parseSpiffeId } from "../../compiler/spiffe.js";
import type { EngineEnv } from "../http/context.js";
import { readJsonBody } from "../http/body.js";
import { bodyErrorResponse, errorResponse } from "../http/errors.js";
import type { JsonBounds } from "../http/json-bounds.js";
import type { EngineCore } from "../http/extension.js";
import { ADMISSION_API_VERSION, reviewAdmission } from "./admission.js";

/**
 * An AdmissionReview is one object; its Kubernetes object nests deeply (a CronJob's containers'
 * env sources, managedFields' fieldsV1) and may carry large annotations (last-applied
 * configuration, at most 256 KiB by the API server's own limit).
 */
const REVIEW_BOUNDS: JsonBounds = { maxDepth: 64, maxStringBytes: 512 * 1024, maxItems: 1, maxValuesPerItem: 1_000_000 };

export function admissionRoutes(core: EngineCore, maxBodyBytes: number): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  app.post("/v1/admission/:domain/:cluster", async (c) => {
    const { domain: trustDomain, cluster } = c.req.param();
    const scope = parseSpiffeId(`spiffe://${trustDomain}/${cluster}`);
    if (!scope.ok || scope.value.segments.length !== 1) return errorResponse(c, 400, { code: "invalid_request", message: `path: "${trustDomain}" and "${cluster}" must be a trust domain and a cluster name (spiffe://${trustDomain}/${cluster}/<namespace>/<service account>)`, path: "path" });
    // The API server sends application/json; the media type, size, UTF-8 and bounds come first.
    const body = await readJsonBody(c, maxBodyBytes, REVIEW_BOUNDS);
    if (!body.ok) return bodyErrorResponse(c, body);
    const active = core.store.current();
    // A top-level array too large for one slice comes back as a batch: no AdmissionReview either way.
    const outcome = reviewAdmission(body.batch ? [] : body.value, active?.set ?? { policies: [] }, { trustDomain: scope.value.trustDomain, cluster });
    if (outcome.kind === "invalid") return errorResponse(c, 400, { code: "invalid_admission_review", message: `${outcome.path}: ${outcome.message}`, path: outcome.path });
    const review = outcome.review;
    // Without a module nothing is declared: refused, closed, saying why.
    if (!active && outcome.identity !== null) {
      review.response.allowed = false;
      review.response.status = { code: 503, reason: "ServiceUnavailable", message: "zt admission gate: the engine has no policy module loaded; nothing can be admitted until it has" };
    }
    // A dry run (kubectl --dry-run=server) gets the real answer; the gate has no side effects
    // to skip (sideEffects: None), and only real refusals are logged at info.
    if (!review.response.allowed) {
      const fields = { request_id: c.get("requestId"), uid: review.response.uid, resource: outcome.resource, identity: outcome.identity, dry_run: outcome.dryRun, message: review.response.status?.message };
      if (outcome.dryRun) core.log.debug("admission refused (dry run)", fields);
      else core.log.info("admission refused", fields);
    }
    return c.json(review satisfies { apiVersion: typeof ADMISSION_API_VERSION });
  });
  return app;
}
