// deploy/: every manifest passes the Kubernetes OpenAPI schema of its kind, the engine's
// StatefulSet is the seed's Deployment with a volume per replica for what must survive, the ConfigMap carries policies/ verbatim, and the engine's NetworkPolicies work
// together with what `zt netpol` generates for the seed policy.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Document, parse as parseYaml, parseAllDocuments } from "yaml";
import { loadPolicyFiles } from "../../compiler/load.js";
import { parsePolicyText } from "../../compiler/parse.js";
import { generateNetworkPolicies } from "../../compiler/netpol/generate.js";
import { netpolOptions, type NetworkPolicy } from "../../compiler/netpol/types.js";
import { apiServerRules, validateObject } from "./schema.js";
import { admits, type ClusterView, type Pod } from "./semantics.js";

const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const K8S = root("deploy/k8s");

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

async function manifests(): Promise<Array<{ file: string; obj: Obj }>> {
  const out: Array<{ file: string; obj: Obj }> = [];
  for (const file of (await readdir(K8S)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort()) {
    const docs = parseAllDocuments(await readFile(`${K8S}/${file}`, "utf8"));
    if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
    for (const d of docs) {
      expect(d.errors, file).toEqual([]);
      out.push({ file, obj: d.toJS() as Obj });
    }
  }
  return out;
}

function find<T = Obj>(all: Array<{ obj: Obj }>, kind: string, name: string): T {
  const hit = all.find((m) => m.obj.kind === kind && m.obj.metadata.name === name);
  if (!hit) throw new Error(`no ${kind}/${name} in deploy/k8s`);
  return hit.obj as T;
}

/** The ConfigMap as it must be: policies/*.yaml verbatim, one key per file. */
async function expectedConfigMap(): Promise<string> {
  const data: Record<string, string> = {};
  for (const f of (await readdir(root("policies"))).filter((f) => /\.ya?ml$/.test(f)).sort()) data[f] = await readFile(root(`policies/${f}`), "utf8");
  const cm = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "zt-policies", namespace: "hanzo", labels: { app: "zt-policy-engine", "app.kubernetes.io/name": "zt-policy-engine", "app.kubernetes.io/part-of": "zt" } },
    data,
  };
  const header = [
    "# The policy files the engine loads from ZT_POLICY_PATH (/etc/zt/policies/), one key per file,",
    "# verbatim copies of policies/*.yaml (test/netpol/deploy.test.ts fails when they drift).",
    "# Regenerate: ZT_UPDATE_GOLDEN=1 npx vitest run test/netpol/deploy.test.ts",
  ].join("\n");
  return `${header}\n${new Document(cm).toString({ lineWidth: 0, blockQuote: "literal" })}`;
}

describe("deploy/k8s manifests", () => {
  it("every object passes the OpenAPI schema of its kind", async () => {
    const all = await manifests();
    expect(all.map((m) => `${m.obj.kind}/${m.obj.metadata.name}`).sort()).toEqual(
      [
        "ConfigMap/zt-policies",
        "StatefulSet/zt-policy-engine",
        "NetworkPolicy/zt-policy-engine",
        "NetworkPolicy/zt-policy-engine-audit-db",
        "PodDisruptionBudget/zt-policy-engine",
        "Service/zt-policy-engine",
        "ServiceAccount/zt-policy-engine",
      ].sort(),
    );
    for (const { file, obj } of all) {
      expect(() => validateObject(obj), file).not.toThrow();
      expect(obj.metadata.namespace, file).toBe("hanzo");
      if (obj.kind === "NetworkPolicy") expect(apiServerRules(obj as unknown as NetworkPolicy), file).toEqual([]);
    }
  });

  it("the schema check is real: a wrong field type is rejected", async () => {
    const dep = find(await manifests(), "StatefulSet", "zt-policy-engine");
    expect(() => validateObject({ ...dep, spec: { ...(dep.spec as object), replicas: "3" } })).toThrow(/replicas must be integer/);
  });

  it("kustomization.yaml lists every manifest", async () => {
    const k = parseYaml(await readFile(`${K8S}/kustomization.yaml`, "utf8")) as { resources: string[] };
    const files = (await readdir(K8S)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
    expect([...k.resources].sort()).toEqual(files);
  });

  it("the StatefulSet is the seed's Deployment, with nothing that must survive in an emptyDir", async () => {
    type C = { name: string; image: string; ports: Array<{ containerPort: number; name: string }>; env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }>; resources: unknown; readinessProbe: unknown; livenessProbe: unknown; securityContext: { readOnlyRootFilesystem: boolean; runAsNonRoot: boolean; allowPrivilegeEscalation: boolean }; volumeMounts: Array<{ name: string; mountPath: string }> };
    type D = Obj & {
      spec: {
        replicas: number;
        serviceName: string;
        selector: { matchLabels: Record<string, string> };
        template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; containers: C[]; volumes: Array<{ name: string; configMap?: { name: string }; emptyDir?: unknown }> } };
        volumeClaimTemplates: Array<{ metadata: { name: string }; spec: { accessModes: string[]; resources: { requests: { storage: string } } } }>;
      };
    };
    const dep = find<D>(await manifests(), "StatefulSet", "zt-policy-engine");
    expect(dep.metadata.namespace).toBe("hanzo");
    expect(dep.spec.replicas).toBe(3);
    const c = dep.spec.template.spec.containers[0]!;
    expect(c.image).toBe("ghcr.io/hanzoai/zt:latest");
    expect(c.ports.map((p) => [p.containerPort, p.name])).toEqual([
      [8054, "policy"],
      [8055, "health"],
    ]);
    const env = new Map(c.env.map((e) => [e.name, e]));
    expect(env.get("ZT_SPIRE_SOCKET")?.value).toBe("/run/spire/sockets/agent.sock");
    expect(env.get("ZT_POLICY_PATH")?.value).toBe("/etc/zt/policies/");
    expect(env.get("ZT_AUDIT_DSN")?.valueFrom?.secretKeyRef).toEqual({ name: "zt-secrets", key: "AUDIT_DATABASE_URL" });
    expect(env.get("ZT_PORT")?.value).toBe("8054");
    expect(env.get("ZT_DATA_DIR")?.value).toBe("/var/lib/zt");
    expect(env.get("ZT_REPLICA_ID")?.valueFrom).toEqual({ fieldRef: { fieldPath: "metadata.name" } });
    expect(["observe", "enforce"]).toContain(env.get("ZT_MODE")?.value);
    expect(env.get("ZT_ADMIN_TOKEN")?.valueFrom?.secretKeyRef.name).toBe("zt-secrets");
    expect(c.resources).toEqual({ requests: { memory: "128Mi", cpu: "100m" }, limits: { memory: "512Mi", cpu: "500m" } });
    expect(c.readinessProbe).toEqual({ httpGet: { path: "/healthz", port: 8055 }, initialDelaySeconds: 5, periodSeconds: 10 });
    expect(c.livenessProbe).toEqual({ httpGet: { path: "/healthz", port: 8055 }, initialDelaySeconds: 15, periodSeconds: 30 });
    // Read-only root: every write goes to ZT_DATA_DIR (the audit spool, the state cache: a
    // volume per replica that outlives the pod) and /tmp (scratch, an emptyDir).
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false });
    const vols = new Map(dep.spec.template.spec.volumes.map((v) => [v.name, v]));
    const mounts = new Map(c.volumeMounts.map((m) => [m.mountPath, m.name]));
    const data = mounts.get("/var/lib/zt")!;
    expect(vols.has(data)).toBe(false);
    expect(dep.spec.volumeClaimTemplates.map((t) => [t.metadata.name, t.spec.accessModes, t.spec.resources.requests.storage])).toEqual([[data, ["ReadWriteOnce"], "1Gi"]]);
    expect(vols.get(mounts.get("/tmp")!)?.emptyDir).toBeDefined();
    expect(dep.spec.serviceName).toBe("zt-policy-engine");
    expect(vols.get(mounts.get("/etc/zt/policies")!)?.configMap?.name).toBe("zt-policies");
    expect(mounts.get("/run/spire/sockets")).toBeDefined();
    expect(dep.spec.selector.matchLabels).toEqual({ app: "zt-policy-engine" });
    expect(dep.spec.template.metadata.labels.app).toBe("zt-policy-engine");
    expect(dep.spec.template.spec.serviceAccountName).toBe("zt-policy-engine");
  });

  it("Service and PodDisruptionBudget select the StatefulSet's pods; the PDB keeps two of three", async () => {
    const all = await manifests();
    const svc = find<Obj & { spec: { selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> } }>(all, "Service", "zt-policy-engine");
    expect(svc.spec.selector).toEqual({ app: "zt-policy-engine" });
    expect(svc.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([
      [8054, "policy"],
      [8055, "health"],
    ]);
    const pdb = find<Obj & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>(all, "PodDisruptionBudget", "zt-policy-engine");
    expect(pdb.spec.selector.matchLabels).toEqual({ app: "zt-policy-engine" });
    expect(pdb.spec.minAvailable).toBe(2);
  });

  it("the ConfigMap carries policies/*.yaml verbatim, and each parses", async () => {
    const expected = await expectedConfigMap();
    const file = `${K8S}/configmap-policies.yaml`;
    if (process.env.ZT_UPDATE_GOLDEN === "1") await writeFile(file, expected);
    expect(await readFile(file, "utf8")).toBe(expected);
    const cm = find<Obj & { data: Record<string, string> }>(await manifests(), "ConfigMap", "zt-policies");
    for (const [name, text] of Object.entries(cm.data)) {
      expect(text).toBe(await readFile(root(`policies/${name}`), "utf8"));
      const r = parsePolicyText(text, name);
      expect(r.ok, name).toBe(true);
    }
  });

  it("with the seed's generated NetworkPolicies applied too: sidecars reach the engine, the engine reaches its audit DB and nothing else", async () => {
    const loaded = await loadPolicyFiles([root("policies/hanzo-core-policy.yaml")]);
    if (!loaded.ok) throw new Error("seed policy does not load");
    const generated = generateNetworkPolicies(loaded.set, netpolOptions({ cluster: "hanzo-k8s", trustDomain: "hanzo.ai" })).objects;
    const engineNps = (await manifests()).filter((m) => m.obj.kind === "NetworkPolicy").map((m) => m.obj as unknown as NetworkPolicy);
    const ns = (name: string): [string, { name: string; labels: Record<string, string> }] => [name, { name, labels: { "kubernetes.io/metadata.name": name } }];
    const view: ClusterView = { cluster: "hanzo-k8s", namespaces: new Map([ns("hanzo"), ns("kube-system"), ns("lux"), ns("monitoring")]), policies: [...generated, ...engineNps] };
    const pod = (app: string, n: number, namespace = "hanzo", label = "app"): Pod => ({ cluster: "hanzo-k8s", namespace, labels: { [label]: app }, ip: `10.0.0.${n}` });
    const engine = pod("zt-policy-engine", 1);
    const [iam, chat, postgres, redis] = [pod("iam", 2), pod("chat", 3), pod("postgres", 4), pod("redis", 5)];
    const dns = pod("kube-dns", 6, "kube-system", "k8s-app");
    for (const p of [iam, chat, postgres, redis, pod("worker", 7, "lux")]) expect(admits(view, p, engine, 8054)).toBe(true);
    // 8055 (/healthz) is open at the engine, but workloads' egress only reaches 8054; the
    // kubelet's probes come from the node, which NetworkPolicy always admits.
    expect(admits(view, chat, engine, 8055)).toBe(false);
    expect(admits(view, pod("prometheus", 8, "monitoring"), engine, 8055)).toBe(true);
    expect(admits(view, chat, engine, 5432)).toBe(false);
    expect(admits(view, engine, postgres, 5432)).toBe(true);
    expect(admits(view, engine, redis, 6379)).toBe(false);
    expect(admits(view, engine, iam, 8000)).toBe(false);
    expect(admits(view, engine, dns, 53)).toBe(true);
    // The audit-db admission is for the engine only: chat still has no path to postgres.
    expect(admits(view, chat, postgres, 5432)).toBe(false);
  });
});
