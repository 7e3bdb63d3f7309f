// `zt netpol` as a command: output streams, options, exit codes.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { netpolCommand } from "../../compiler/netpol/command.js";
import { apiServerRules, validateObject } from "./schema.js";

const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const SEED = root("policies/hanzo-core-policy.yaml");
const MESH = root("test/netpol/fixtures/mesh-policy.yaml");

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await netpolCommand(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

function objects(yaml: string): Array<{ metadata: { name: string; namespace: string }; spec: Record<string, unknown> }> {
  const docs = parseAllDocuments(yaml);
  if (!Array.isArray(docs)) throw new Error("not a stream");
  return docs.map((d) => d.toJS());
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "zt-netpol-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("zt netpol", () => {
  it("seed policy: YAML on stdout equal to the golden file, summary on stderr, exit 0", async () => {
    const r = await run([SEED]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(await readFile(root("test/netpol/golden/hanzo-core-policy.hanzo-k8s.yaml"), "utf8"));
    expect(r.err).toMatch(/hanzo-core-policy\.yaml:\d+:\d+: warning: \[udp-not-mirrored\] /);
    expect(r.err.trimEnd().split("\n").at(-1)).toBe("zt netpol: 10 NetworkPolicy object(s) for cluster hanzo-k8s in 1 namespace(s), 1 warning(s)");
  });

  it("a whole directory: OperatorAccessPolicy files are read and ignored", async () => {
    const r = await run([root("policies"), "--cluster", "hanzo-k8s"]);
    expect(r.code).toBe(0);
    expect(objects(r.out)).toHaveLength(10);
  });

  it("warnings go to stderr as file:line:col: warning: [code] …; the YAML stays on stdout", async () => {
    const r = await run([MESH, "--cluster", "hanzo-k8s", "--remote-cidr", "lux-k8s=10.244.0.0/16"]);
    expect(r.code).toBe(0);
    const lines = r.err.trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(/^zt netpol: 12 NetworkPolicy object\(s\) for cluster hanzo-k8s in 2 namespace\(s\), 8 warning\(s\)$/);
    for (const l of lines.slice(0, -1)) expect(l).toMatch(/mesh-policy\.yaml:\d+:\d+: warning: \[[a-z-]+\] /);
    expect(r.out).not.toContain(": warning: ");
    for (const o of objects(r.out)) validateObject(o);
  });

  it("several clusters and no --cluster: usage error naming them", async () => {
    const r = await run([MESH]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("choose one with --cluster");
    expect(r.err).toContain("hanzo-k8s");
    expect(r.err).toContain("lux-k8s");
    expect(r.out).toBe("");
  });

  it("--cluster selects another cluster's objects", async () => {
    const r = await run([MESH, "--cluster", "lux-k8s", "--remote-cidr", "hanzo-k8s=10.245.0.0/16"]);
    expect(r.code).toBe(0);
    const objs = objects(r.out);
    expect(objs.every((o) => o.metadata.namespace === "lux")).toBe(true);
    expect(objs.map((o) => o.metadata.name)).toContain("validator-egress");
    expect(r.out).toContain("cidr: 10.245.0.0/16");
  });

  it("--label, --namespace-label and --no-infra-egress change the mapping", async () => {
    const r = await run([SEED, "--label", "app.kubernetes.io/name", "--namespace-label", "team.hanzo.ai/ns", "--no-infra-egress"]);
    expect(r.code).toBe(0);
    const objs = objects(r.out);
    expect(objs.map((o) => o.metadata.name)).not.toContain("zt-infra-egress");
    expect(objs).toHaveLength(8);
    const pg = objs.find((o) => o.metadata.name === "postgres-ingress")!;
    expect(pg.spec.podSelector).toEqual({ matchLabels: { "app.kubernetes.io/name": "postgres" } });
  });

  it("accounts that collide with the generator's names or are no object name: valid, distinct objects, exit 0", async () => {
    // zt check accepts these SPIFFE IDs; the mirror must neither crash nor emit names the API server refuses.
    const file = join(dir, "names.yaml");
    const ids = ["zt-infra", "zt-default", "a..b", "x.-y", "Upper", "zt-0123456789"];
    const rules = ids.map((id) => `    - from: {spiffe: "spiffe://hanzo.ai/c1/n1/${id}"}\n      to: [{spiffe: "spiffe://hanzo.ai/c1/n1/db", ports: [5432]}]`);
    await writeFile(file, `apiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata: {name: names}\nspec:\n  rules:\n${rules.join("\n")}\n  defaultAction: DENY\n`);
    const r = await run([file]);
    expect(r.code, r.err).toBe(0);
    const objs = objects(r.out);
    const names = objs.map((o) => o.metadata.name);
    expect(new Set(names).size).toBe(names.length);
    for (const o of objs) {
      validateObject(o);
      expect(apiServerRules(o as never)).toEqual([]);
    }
    // The generator's own names are there once each, and no account took one of them.
    expect(names.filter((n) => n === "zt-infra-egress")).toHaveLength(1);
    expect(names.filter((n) => n === "zt-default-deny")).toHaveLength(1);
    expect(names).toContain("db-ingress");
    // Six egress objects, one per account, each selecting its account by the pod label.
    const egress = objs.filter((o) => o.metadata.name.endsWith("-egress") && o.metadata.name !== "zt-infra-egress");
    expect(egress.map((o) => (o.spec.podSelector as { matchLabels: { app: string } }).matchLabels.app).sort()).toEqual([...ids].sort());
  });

  it("an account that cannot be a --label value selects no pod: a warning with file:line:col, never an invalid selector", async () => {
    const file = join(dir, "labels.yaml");
    await writeFile(
      file,
      `apiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata: {name: labels}\nspec:\n  rules:\n    - from: {spiffe: "spiffe://hanzo.ai/c1/n1/-lead"}\n      to: [{spiffe: "spiffe://hanzo.ai/c1/n1/db", ports: [5432]}]\n    - from: {spiffe: "spiffe://hanzo.ai/c1/n1/${"x".repeat(64)}"}\n      to: [{spiffe: "spiffe://hanzo.ai/c1/n1/db", ports: [5432]}]\n  defaultAction: DENY\n`,
    );
    const r = await run([file]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/labels\.yaml:6:7: warning: \[unmappable-identity\] spiffe:\/\/hanzo\.ai\/c1\/n1\/-lead names no pod of cluster c1: service account "-lead" is not a valid label value/);
    expect(r.err).toMatch(/labels\.yaml:8:7: warning: \[unmappable-identity\] /);
    for (const o of objects(r.out)) expect(apiServerRules(o as never)).toEqual([]);
    // n1 is still isolated: the accounts name it literally.
    expect(objects(r.out).map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toContain("n1/zt-default-deny");
  });

  it("--system-namespace keeps a namespace free of objects; kube-system always is", async () => {
    const file = join(dir, "system.yaml");
    await writeFile(
      file,
      `apiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata: {name: sys}\nspec:\n  rules:\n    - from: {spiffe: "spiffe://hanzo.ai/c1/kube-system/metrics-server"}\n      to: [{spiffe: "spiffe://hanzo.ai/c1/n1/app", ports: [443]}]\n    - from: {spiffe: "spiffe://hanzo.ai/c1/n1/app"}\n      to: [{spiffe: "spiffe://hanzo.ai/c1/monitoring/prometheus", ports: [9090]}]\n  defaultAction: DENY\n`,
    );
    const plain = await run([file]);
    expect(plain.code).toBe(0);
    expect(objects(plain.out).map((o) => o.metadata.namespace).sort()).not.toContain("kube-system");
    expect(new Set(objects(plain.out).map((o) => o.metadata.namespace))).toEqual(new Set(["monitoring", "n1"]));
    expect(plain.err).toContain("warning: [system-namespace] kube-system is a system namespace");
    const r = await run([file, "--system-namespace", "monitoring"]);
    expect(r.code).toBe(0);
    expect(new Set(objects(r.out).map((o) => o.metadata.namespace))).toEqual(new Set(["n1"]));
    expect(r.out).toContain("# System namespaces, never isolated (DNS lives there): kube-system, monitoring; named by the policy: kube-system, monitoring");
  });

  it("-o writes the file and keeps stdout empty", async () => {
    const file = join(dir, "out.yaml");
    const r = await run([SEED, "-o", file]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("");
    expect(await readFile(file, "utf8")).toBe(await readFile(root("test/netpol/golden/hanzo-core-policy.hanzo-k8s.yaml"), "utf8"));
    const bad = await run([SEED, "-o", join(dir, "missing-dir", "out.yaml")]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("cannot write");
  });

  it("policy errors: exit 1, each as file:line:col: message, no YAML", async () => {
    const file = join(dir, "broken.yaml");
    await writeFile(
      file,
      ["apiVersion: zt.hanzo.ai/v1", "kind: ServiceAccessPolicy", "metadata:", "  name: broken", "spec:", "  rules:", "    - from:", '        spiffe: "spiffe://hanzo.ai/a/**/b"', "      to:", '        - spiffe: "spiffe://hanzo.ai/x/y/z"', "  defaultAction: DENY", ""].join("\n"),
    );
    const r = await run([file]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:8:\\d+: .+`, "m"));
    const missing = await run([join(dir, "nope.yaml")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/nope\.yaml:1:1: cannot read/);
  });

  it("usage errors exit 2; --help exits 0 with the usage on stdout", async () => {
    for (const argv of [[], ["--bogus", SEED], [SEED, "--system-namespace", "Kube_System"], [SEED, "--remote-cidr", "lux-k8s"], [SEED, "--remote-cidr", "lux-k8s=10.0.0.0/33"], [SEED, "--remote-cidr", "lux-k8s=banana"], [SEED, "--label", "bad label"], [SEED, "--cluster"]]) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err).toMatch(/^zt netpol: /);
    }
    const h = await run(["--help"]);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^usage: zt netpol/);
  });
});
