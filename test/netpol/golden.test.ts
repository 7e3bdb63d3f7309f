// Golden output for the seed's policy (policies/hanzo-core-policy.yaml) and for a fixture
// that exercises every warning; every generated object is checked against the Kubernetes
// OpenAPI schema. Regenerate the golden files with ZT_UPDATE_GOLDEN=1 after a deliberate change.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { loadPolicyFiles } from "../../compiler/load.js";
import type { PolicySet } from "../../compiler/model.js";
import { generateNetworkPolicies } from "../../compiler/netpol/generate.js";
import { formatNetpolWarning, netpolOptions, type NetpolOptions } from "../../compiler/netpol/types.js";
import { apiServerRules, validateObject } from "./schema.js";
import { admits, type ClusterView, type Pod } from "./semantics.js";

const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const UPDATE = process.env.ZT_UPDATE_GOLDEN === "1";

async function load(path: string): Promise<PolicySet> {
  const r = await loadPolicyFiles([root(path)]);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`).join("\n"));
  return r.set;
}

async function golden(name: string, actual: string): Promise<void> {
  const file = root(`test/netpol/golden/${name}`);
  if (UPDATE) await writeFile(file, actual);
  expect(actual).toBe(await readFile(file, "utf8"));
}

/** Warnings as the CLI prints them, with the checkout's path made relative. */
function warningText(ws: ReturnType<typeof generateNetworkPolicies>["warnings"]): string {
  return ws.map((w) => formatNetpolWarning(w).replace(root(""), "")).join("\n") + "\n";
}

const SEED_OPTS: NetpolOptions = netpolOptions({ cluster: "hanzo-k8s", trustDomain: "hanzo.ai" });

describe("netpol golden: the seed's hanzo-core-policy", () => {
  it("matches the golden YAML, 10 objects, one warning (TCP only)", async () => {
    const set = await load("policies/hanzo-core-policy.yaml");
    const r = generateNetworkPolicies(set, SEED_OPTS);
    await golden("hanzo-core-policy.hanzo-k8s.yaml", r.yaml);
    expect(r.objects.length).toBe(10);
    expect(r.warnings.map((w) => w.code)).toEqual(["udp-not-mirrored"]);
    expect(r.warnings[0]!.message).toContain("UDP and SCTP to 4000, 5432, 6379, 8000");
    expect(r.namespaces).toEqual(["hanzo"]);
    expect(r.objects.map((o) => o.metadata!.name)).toEqual([
      "zt-default-deny",
      "zt-infra-egress",
      "zt-infra-ingress-zt-policy-engine",
      "chat-egress",
      "gateway-egress",
      "gateway-ingress",
      "iam-egress",
      "iam-ingress",
      "postgres-ingress",
      "redis-ingress",
    ]);
  });

  it("the YAML parses back to exactly the objects, and every object passes the NetworkPolicy schema", async () => {
    const r = generateNetworkPolicies(await load("policies/hanzo-core-policy.yaml"), SEED_OPTS);
    const docs = parseAllDocuments(r.yaml);
    expect(Array.isArray(docs)).toBe(true);
    const parsed = (docs as Array<{ errors: unknown[]; toJS(): unknown }>).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS();
    });
    expect(parsed).toEqual(r.objects);
    for (const o of parsed) {
      validateObject(o);
      expect(apiServerRules(o as (typeof r.objects)[number])).toEqual([]);
    }
  });

  it("postgres-ingress has the seed's shape: the seed's example restricted to the sources the policy names", async () => {
    const r = generateNetworkPolicies(await load("policies/hanzo-core-policy.yaml"), SEED_OPTS);
    const seedExample = parseYaml(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: postgres-ingress
  namespace: hanzo
spec:
  podSelector:
    matchLabels:
      app: postgres
  policyTypes:
    - Ingress
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app: iam
        - podSelector:
            matchLabels:
              app: gateway
      ports:
        - protocol: TCP
          port: 5432
`) as Record<string, unknown>;
    const pg = r.objects.find((o) => o.metadata?.name === "postgres-ingress");
    expect(pg).toBeDefined();
    const { labels: _labels, ...meta } = pg!.metadata!;
    expect({ ...pg, metadata: meta }).toEqual(seedExample);
  });

  it("is deterministic", async () => {
    const set = await load("policies/hanzo-core-policy.yaml");
    expect(generateNetworkPolicies(set, SEED_OPTS).yaml).toBe(generateNetworkPolicies(set, SEED_OPTS).yaml);
  });

  it("the seed's principle holds at the kernel layer: chat has no path to postgres or redis, only to gateway:4000", async () => {
    const r = generateNetworkPolicies(await load("policies/hanzo-core-policy.yaml"), SEED_OPTS);
    const view: ClusterView = { cluster: "hanzo-k8s", namespaces: new Map([["hanzo", { name: "hanzo", labels: { "kubernetes.io/metadata.name": "hanzo" } }]]), policies: r.objects };
    const pod = (app: string, n: number): Pod => ({ cluster: "hanzo-k8s", namespace: "hanzo", labels: { app }, ip: `10.0.0.${n}` });
    const [chat, gateway, iam, postgres, redis] = [pod("chat", 1), pod("gateway", 2), pod("iam", 3), pod("postgres", 4), pod("redis", 5)];
    expect(admits(view, chat, gateway, 4000)).toBe(true);
    expect(admits(view, chat, gateway, 4001)).toBe(false);
    expect(admits(view, chat, postgres, 5432)).toBe(false);
    expect(admits(view, chat, redis, 6379)).toBe(false);
    expect(admits(view, chat, iam, 8000)).toBe(false);
    expect(admits(view, iam, postgres, 5432)).toBe(true);
    expect(admits(view, gateway, postgres, 5432)).toBe(true);
    expect(admits(view, postgres, iam, 8000)).toBe(false);
    // Supply-chain row: an unlisted pod in the namespace has no egress but DNS and the engine.
    const rogue = pod("rogue", 9);
    expect(admits(view, rogue, postgres, 5432)).toBe(false);
    expect(admits(view, rogue, redis, 6379)).toBe(false);
  });
});

describe("netpol golden: a policy with wildcards, DENY, cross-cluster and ** rules", () => {
  const opts = netpolOptions({ cluster: "hanzo-k8s", trustDomain: "hanzo.ai", remoteCidrs: { "lux-k8s": ["10.244.0.0/16"] } });

  it("matches the golden YAML and warnings; every object passes the schema", async () => {
    const r = generateNetworkPolicies(await load("test/netpol/fixtures/mesh-policy.yaml"), opts);
    await golden("mesh-policy.hanzo-k8s.yaml", r.yaml);
    await golden("mesh-policy.hanzo-k8s.warnings.txt", warningText(r.warnings));
    for (const o of r.objects) {
      validateObject(o);
      expect(apiServerRules(o)).toEqual([]);
    }
    expect(r.warnings.map((w) => w.code).sort()).toEqual(
      ["cluster-unmapped", "cross-cluster", "cross-cluster", "deny-not-mirrored", "globstar", "observe-rollout", "udp-not-mirrored", "unmappable-identity"].sort(),
    );
  });

  it("every warning is also a comment in the YAML", async () => {
    const r = generateNetworkPolicies(await load("test/netpol/fixtures/mesh-policy.yaml"), opts);
    for (const w of r.warnings) expect(r.yaml).toContain(`# warning [${w.code}] ${w.rule}: ${w.message}`);
  });

  it("the DENY hole on the gateway's admin range is exact: chat gets 4100-4149, not 4150-4199; others get both", async () => {
    const r = generateNetworkPolicies(await load("test/netpol/fixtures/mesh-policy.yaml"), opts);
    const ns = (name: string): [string, { name: string; labels: Record<string, string> }] => [name, { name, labels: { "kubernetes.io/metadata.name": name } }];
    const view: ClusterView = { cluster: "hanzo-k8s", namespaces: new Map([ns("hanzo"), ns("monitoring")]), policies: r.objects };
    const pod = (app: string, n: number, namespace = "hanzo"): Pod => ({ cluster: "hanzo-k8s", namespace, labels: { app }, ip: `10.0.0.${n}` });
    const [chat, cloud, gateway] = [pod("chat", 1), pod("cloud", 2), pod("gateway", 3)];
    expect(admits(view, chat, gateway, 4149)).toBe(true);
    expect(admits(view, chat, gateway, 4150)).toBe(false);
    expect(admits(view, cloud, gateway, 4150)).toBe(true);
    expect(admits(view, cloud, gateway, 4200)).toBe(false);
    const lux = { cluster: "lux-k8s", namespace: "lux", labels: { app: "validator" }, ip: "10.244.3.7" };
    expect(admits(view, lux, gateway, 4000)).toBe(true);
    expect(admits(view, lux, gateway, 4100)).toBe(false);
    // Prometheus scrapes any namespace the policy governs, on 9090 only.
    const prom = pod("prometheus", 4, "monitoring");
    expect(admits(view, prom, cloud, 9090)).toBe(true);
    expect(admits(view, prom, cloud, 9091)).toBe(false);
  });
});
