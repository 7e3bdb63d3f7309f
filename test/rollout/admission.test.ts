// The Phase 4 admission gate: AdmissionReview bodies (admission.k8s.io/v1) around objects built
// with kubernetes-models' types, judged against the seed policies; over the engine's TLS
// listener as the kube-apiserver calls it (no client certificate, the server name its Service
// DNS name); the same uid back; dryRun; bad input per the webhook contract; the deploy/
// manifest; and the engine's reason for the same undeclared callers (undeclared_service).
import "reflect-metadata";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from "kubernetes-models/apps/v1";
import { CronJob, Job } from "kubernetes-models/batch/v1";
import { ValidatingWebhookConfiguration } from "kubernetes-models/admissionregistration.k8s.io/v1";
import { Pod } from "kubernetes-models/v1";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { compilePolicySet } from "../../compiler/compile.js";
import type { PolicySet } from "../../compiler/model.js";
import { parseSpiffeId } from "../../compiler/spiffe.js";
import { createMetrics } from "../../host/metrics/metrics.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { setupIdentity, type Identity } from "../../host/identity/index.js";
import { identityEngineOptions } from "../../host/http/identity.js";
import { declarations, reviewAdmission } from "../../host/rollout/admission.js";
import { rolloutExtension } from "../../host/rollout/extension.js";
import { call, H, startTestEngine, svc, type TestEngine } from "../http/harness.js";
import { createCa, issueSvid, type TestCa } from "../identity/pki.js";
import { seedSet } from "../support/seed.js";

const SCOPE = { trustDomain: "hanzo.ai", cluster: "hanzo-k8s" };
const PATH = "/v1/admission/hanzo.ai/hanzo-k8s";
const SERVICE_DNS = "zt-policy-engine.hanzo.svc";

/** The envelope the kube-apiserver sends (admission.k8s.io/v1 is not an OpenAPI resource, so not in kubernetes-models). */
interface AdmissionReviewRequest {
  apiVersion: "admission.k8s.io/v1";
  kind: "AdmissionReview";
  request: {
    uid: string;
    kind: { group: string; version: string; kind: string };
    resource: { group: string; version: string; resource: string };
    subResource?: string;
    namespace?: string;
    name?: string;
    operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
    userInfo: { username: string; groups?: string[] };
    object: unknown;
    oldObject?: unknown;
    dryRun?: boolean;
  };
}

let uidN = 0;
type Model = { apiVersion: string; kind: string; toJSON(): unknown };
function review(object: Model | null, opts: { namespace?: string; operation?: AdmissionReviewRequest["request"]["operation"]; dryRun?: boolean; subResource?: string; kind?: string; old?: Model } = {}): AdmissionReviewRequest {
  const [group, version] = object ? (object.apiVersion.includes("/") ? object.apiVersion.split("/") : ["", object.apiVersion]) : ["", "v1"];
  const kind = opts.kind ?? object?.kind ?? "Pod";
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: `705ab4f5-6393-11e8-b7cc-42010a8000${String(++uidN).padStart(2, "0")}`,
      kind: { group: group!, version: version!, kind },
      resource: { group: group!, version: version!, resource: `${kind.toLowerCase()}s` },
      ...(opts.subResource ? { subResource: opts.subResource } : {}),
      namespace: opts.namespace ?? "hanzo",
      operation: opts.operation ?? "CREATE",
      userInfo: { username: "admin", groups: ["system:authenticated"] },
      object: object ? JSON.parse(JSON.stringify(object.toJSON())) : null,
      ...(opts.old ? { oldObject: JSON.parse(JSON.stringify(opts.old.toJSON())) } : {}),
      ...(opts.dryRun !== undefined ? { dryRun: opts.dryRun } : {}),
    },
  };
}

const podSpec = (sa: string | null): IPodSpec => ({ ...(sa === null ? {} : { serviceAccountName: sa }), containers: [{ name: "app", image: "ghcr.io/hanzoai/app:1" }] });
const template = (sa: string | null) => ({ metadata: { labels: { app: "x" } }, spec: podSpec(sa) });
const selector = { matchLabels: { app: "x" } };
const meta = (name: string) => ({ name, namespace: "hanzo" });

/** One object of every gated kind, its pods running as service account `sa` (null: none named). */
function workloads(sa: string | null) {
  const objs = [
    new Pod({ metadata: meta("p"), spec: podSpec(sa) }),
    new Deployment({ metadata: meta("d"), spec: { selector, template: template(sa) } }),
    new StatefulSet({ metadata: meta("s"), spec: { selector, serviceName: "s", template: template(sa) } }),
    new DaemonSet({ metadata: meta("ds"), spec: { selector, template: template(sa) } }),
    new ReplicaSet({ metadata: meta("rs"), spec: { selector, template: template(sa) } }),
    new Job({ metadata: meta("j"), spec: { template: { ...template(sa), spec: { ...podSpec(sa), restartPolicy: "Never" } } } }),
    new CronJob({ metadata: meta("cj"), spec: { schedule: "*/5 * * * *", jobTemplate: { spec: { template: { ...template(sa), spec: { ...podSpec(sa), restartPolicy: "Never" } } } } } }),
  ];
  // The bodies are what the API server would send: objects valid by the Kubernetes schema.
  for (const o of objs) o.validate();
  return objs;
}

let seed: PolicySet;
beforeAll(async () => {
  seed = await seedSet();
});

describe("reviewAdmission: the decision", () => {
  it("admits every gated kind whose service account the policies declare, as caller or as destination; refuses the others, naming what is missing", () => {
    for (const sa of ["gateway", "chat", "postgres", "redis"]) {
      for (const o of workloads(sa)) {
        const body = review(o);
        const out = reviewAdmission(body, seed, SCOPE);
        if (out.kind !== "answer") throw new Error(out.message);
        expect(out.review, `${o.kind} ${sa}`).toEqual({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid: body.request.uid, allowed: true } });
        expect(out.identity).toBe(H + sa);
      }
    }
    for (const o of workloads("newsvc")) {
      const body = review(o);
      const out = reviewAdmission(body, seed, SCOPE);
      if (out.kind !== "answer") throw new Error(out.message);
      expect(out.review.response.uid).toBe(body.request.uid);
      expect(out.review.response.allowed).toBe(false);
      expect(out.review.response.status).toMatchObject({ code: 403, reason: "Forbidden" });
      const msg = out.review.response.status!.message;
      expect(msg).toContain(`${o.kind} hanzo/${o.metadata!.name} would run as ${H}newsvc (namespace "hanzo", service account "newsvc")`);
      expect(msg).toContain("no ServiceAccessPolicy declares that identity");
    }
  });

  it('no serviceAccountName is the "default" service account; the deprecated serviceAccount field is read too; another cluster is another identity', () => {
    for (const o of workloads(null)) {
      const out = reviewAdmission(review(o), seed, SCOPE);
      expect(out.kind === "answer" && out.identity).toBe(H + "default");
      expect(out.kind === "answer" && out.review.response.allowed).toBe(false);
    }
    const legacy = new Pod({ metadata: meta("p"), spec: { serviceAccount: "gateway", containers: [{ name: "a", image: "x" }] } });
    const out = reviewAdmission(review(legacy), seed, SCOPE);
    expect(out.kind === "answer" && out.review.response.allowed).toBe(true);
    const other = reviewAdmission(review(new Pod({ metadata: meta("p"), spec: podSpec("gateway") })), seed, { trustDomain: "hanzo.ai", cluster: "lux-k8s" });
    expect(other.kind === "answer" && other.review.response.allowed).toBe(false);
    expect(other.kind === "answer" && other.identity).toBe("spiffe://hanzo.ai/lux-k8s/hanzo/gateway");
  });

  it("deletes, connects and subresources create no pod and are admitted; other kinds are refused with the reason", () => {
    const [pod] = workloads("newsvc");
    for (const operation of ["DELETE", "CONNECT"] as const) {
      const out = reviewAdmission(review(null, { operation }), seed, SCOPE);
      expect(out.kind === "answer" && out.review.response.allowed, operation).toBe(true);
    }
    const sub = reviewAdmission(review(pod!, { operation: "UPDATE", subResource: "ephemeralcontainers" }), seed, SCOPE);
    expect(sub.kind === "answer" && sub.review.response.allowed).toBe(true);
    const svcKind = reviewAdmission(review(pod!, { kind: "Service" }), seed, SCOPE);
    expect(svcKind.kind === "answer" && svcKind.review.response).toMatchObject({ allowed: false, status: { code: 400, message: expect.stringContaining("Service is not a kind it judges") } });
    const noSpec = review(pod!);
    (noSpec.request.object as { spec?: unknown }).spec = undefined;
    const out = reviewAdmission(noSpec, seed, SCOPE);
    expect(out.kind === "answer" && out.review.response).toMatchObject({ allowed: false, status: { message: expect.stringContaining("has no pod spec at spec") } });
    const badSa = reviewAdmission(review(new Pod({ metadata: meta("p"), spec: podSpec("Bad Name") })), seed, SCOPE);
    expect(badSa.kind === "answer" && badSa.review.response).toMatchObject({ allowed: false, status: { code: 400, message: expect.stringContaining("make no valid SPIFFE ID") } });
  });

  it("an update is judged only when it changes the service account: scaling what runs is never refused", () => {
    const declared = workloads("gateway");
    const undeclared = workloads("newsvc");
    for (let i = 1; i < declared.length; i++) {
      // Same identity before and after (a policy removed since): admitted.
      const same = reviewAdmission(review(undeclared[i]!, { operation: "UPDATE", old: undeclared[i]! }), seed, SCOPE);
      expect(same.kind === "answer" && same.review.response.allowed, undeclared[i]!.kind).toBe(true);
      // A changed service account to an undeclared identity: refused; to a declared one: admitted.
      const changed = reviewAdmission(review(undeclared[i]!, { operation: "UPDATE", old: declared[i]! }), seed, SCOPE);
      expect(changed.kind === "answer" && changed.review.response.allowed, undeclared[i]!.kind).toBe(false);
      const fixed = reviewAdmission(review(declared[i]!, { operation: "UPDATE", old: undeclared[i]! }), seed, SCOPE);
      expect(fixed.kind === "answer" && fixed.review.response.allowed, declared[i]!.kind).toBe(true);
    }
    // An UPDATE without the old object is judged as a create.
    const noOld = reviewAdmission(review(undeclared[1]!, { operation: "UPDATE" }), seed, SCOPE);
    expect(noOld.kind === "answer" && noOld.review.response.allowed).toBe(false);
  });

  it("a body that cannot be answered (no AdmissionReview v1, no uid) is invalid, with the JSON path", () => {
    const ok = review(workloads("gateway")[0]!);
    const cases: Array<[unknown, string]> = [
      [[], "$"],
      [{ ...ok, apiVersion: "admission.k8s.io/v1beta1" }, "$.apiVersion"],
      [{ ...ok, kind: "Pod" }, "$.kind"],
      [{ apiVersion: ok.apiVersion, kind: ok.kind }, "$.request"],
      [{ ...ok, request: { ...ok.request, uid: undefined } }, "$.request.uid"],
      [{ ...ok, request: { ...ok.request, uid: "" } }, "$.request.uid"],
    ];
    for (const [body, path] of cases) {
      const out = reviewAdmission(body, seed, SCOPE);
      expect(out.kind === "invalid" && out.path, JSON.stringify(body).slice(0, 80)).toBe(path);
    }
  });

  it("declared as a caller exactly when the compiled module would not answer undeclared_service (phase 4's default-deny reason)", async () => {
    const rt = await PolicyRuntime.load(compilePolicySet(seed).wasm);
    const names = ["gateway", "chat", "iam", "postgres", "redis", "newsvc", "default"];
    for (const ns of ["hanzo", "lux"]) {
      for (const sa of names) {
        const id = `spiffe://hanzo.ai/hanzo-k8s/${ns}/${sa}`;
        const d = declarations(seed, (parseSpiffeId(id) as { ok: true; value: never }).value);
        const v = rt.evaluateService({ source: id, destination: H + "postgres", port: 5432 });
        expect(d.caller.length === 0, id).toBe(v.reason === 3);
      }
    }
  });
});

describe("POST /v1/admission over the engine's TLS listener", () => {
  let dir: string;
  let root: TestCa;
  let identity: Identity;
  let e: TestEngine;
  let client: https.Agent;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "zt-admission-"));
    root = await createCa({ trustDomain: "hanzo.ai" });
    // The engine's SVID carries the Service's DNS name as well (a SPIRE entry's dnsNames): what
    // the kube-apiserver checks against clientConfig.service.
    const svid = await issueSvid(root, "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt-policy-engine", { dns: [SERVICE_DNS] });
    writeFileSync(join(dir, "tls.crt"), svid.certPem);
    writeFileSync(join(dir, "tls.key"), svid.keyPem);
    writeFileSync(join(dir, "bundle.crt"), root.pem);
    const metrics = createMetrics();
    identity = await setupIdentity({ ZT_TLS_CERT: join(dir, "tls.crt"), ZT_TLS_KEY: join(dir, "tls.key"), ZT_TLS_BUNDLE: join(dir, "bundle.crt") }, { registry: metrics.registry, adminToken: null });
    e = await startTestEngine({ engine: { metrics, ...identityEngineOptions(identity), extensions: [rolloutExtension({})] } });
    // The kube-apiserver: the caBundle, the Service's DNS name, no client certificate.
    client = new https.Agent({ ca: root.pem, servername: SERVICE_DNS, keepAlive: false });
  });

  afterAll(async () => {
    await e?.dispose();
    await identity?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function post(body: string | object, path = PATH, contentType = "application/json"): Promise<{ status: number; json: Record<string, unknown>; type: string }> {
    const data = Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port: e.port, method: "POST", path, agent: client, servername: SERVICE_DNS, headers: { "content-type": contentType, "content-length": String(data.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>, type: String(res.headers["content-type"]) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(data);
    });
  }

  it("answers with the same uid: a declared identity admitted, an undeclared one refused with the message", async () => {
    const ok = review(workloads("gateway")[1]!);
    const a = await post(ok);
    expect(a.status).toBe(200);
    expect(a.type).toMatch(/^application\/json/);
    expect(a.json).toEqual({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid: ok.request.uid, allowed: true } });
    const bad = review(workloads("newsvc")[6]!);
    const r = await post(bad);
    expect(r.status).toBe(200);
    expect(r.json.response).toMatchObject({ uid: bad.request.uid, allowed: false, status: { code: 403, message: expect.stringContaining(`CronJob hanzo/cj would run as ${H}newsvc`) } });
  });

  it("dryRun gets the real answer (the gate has no side effects to skip)", async () => {
    const dry = review(workloads("newsvc")[0]!, { dryRun: true });
    const r = await post(dry);
    expect(r.json.response).toMatchObject({ uid: dry.request.uid, allowed: false });
    const dryOk = review(workloads("chat")[0]!, { dryRun: true });
    expect((await post(dryOk)).json.response).toEqual({ uid: dryOk.request.uid, allowed: true });
  });

  it("bad input: not JSON, not declared JSON, too deep, or no uid is a 4xx with the path (the API server applies the failurePolicy); a bad path is a 400", async () => {
    const notJson = await post("{not json");
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatchObject({ code: "invalid_json", path: "$" });
    const plain = await post(review(workloads("gateway")[0]!), PATH, "text/plain");
    expect(plain.status).toBe(415);
    expect(plain.json.error).toMatchObject({ code: "unsupported_media_type" });
    const deep = await post("[".repeat(100_000) + "]".repeat(100_000));
    expect(deep.status).toBe(400);
    expect(deep.json.error).toMatchObject({ code: "json_too_deep" });
    const noUid = review(workloads("gateway")[0]!) as { request: Partial<AdmissionReviewRequest["request"]> };
    delete noUid.request.uid;
    const r = await post(noUid);
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: "invalid_admission_review", path: "$.request.uid" });
    const badPath = await post(review(workloads("gateway")[0]!), "/v1/admission/HANZO/hanzo-k8s");
    expect(badPath.status).toBe(400);
    expect((badPath.json.error as { path: string }).path).toBe("path");
  });
});

describe("phase 4: the engine's answer to the same undeclared caller", () => {
  it("an undeclared caller is denied as undeclared_service (enforced), a declared one as default_deny", async () => {
    const e = await startTestEngine({});
    try {
      const r = await call<Array<{ decision: string; reason: string; enforced: boolean }>>(e.url, "POST", "/v1/evaluate", { body: [svc("newsvc", "gateway", 4000), svc("chat", "postgres", 5432)] });
      expect(r.status).toBe(200);
      expect(r.body.map((d) => [d.decision, d.reason, d.enforced])).toEqual([
        ["DENY", "undeclared_service", true],
        ["DENY", "default_deny", true],
      ]);
    } finally {
      await e.dispose();
    }
  });
});

describe("deploy/k8s/admission", () => {
  const DIR = "deploy/k8s/admission";
  it("the ValidatingWebhookConfiguration passes its schema, gates every kind the gate judges, names the cluster, and argues its failure policies", () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
    expect((parseYaml(readFileSync(join(DIR, "kustomization.yaml"), "utf8")) as { resources: string[] }).resources.sort()).toEqual(files);
    const text = readFileSync(join(DIR, "validatingwebhookconfiguration.yaml"), "utf8");
    const vwc = new ValidatingWebhookConfiguration(parseYaml(text));
    vwc.validate();
    const hooks = vwc.webhooks!;
    const byPolicy = Object.fromEntries(hooks.map((h) => [h.failurePolicy, h.rules!.flatMap((r) => r.resources!).sort()]));
    expect(byPolicy).toEqual({ Fail: ["cronjobs", "daemonsets", "deployments", "statefulsets"], Ignore: ["jobs", "pods", "replicasets"] });
    for (const h of hooks) {
      expect(h.admissionReviewVersions).toEqual(["v1"]);
      expect(h.sideEffects).toBe("None");
      expect(h.clientConfig.service).toMatchObject({ name: "zt-policy-engine", namespace: "hanzo", port: 8054, path: PATH });
      // Pods: CREATE only (a pod's service account is immutable); the others: CREATE and UPDATE.
      for (const r of h.rules!) expect(r.operations).toEqual(r.resources!.includes("pods") ? ["CREATE"] : ["CREATE", "UPDATE"]);
      // The engine itself is never gated by itself.
      expect(h.objectSelector?.matchExpressions).toEqual([{ key: "app", operator: "NotIn", values: ["zt-policy-engine"] }]);
    }
    const docs = readFileSync("docs/rollout.md", "utf8");
    expect(docs).toContain("failurePolicy: Fail");
    expect(docs).toContain("failurePolicy: Ignore");
  });
});
