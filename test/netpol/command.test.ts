// `zt netpol` as a command: output streams, options, exit codes.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { netpolCommand } from "../../compiler/netpol/command.js";
import { validateObject } from "./schema.js";

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
    expect(r.err).toBe("zt netpol: 9 NetworkPolicy object(s) for cluster hanzo-k8s in 1 namespace(s), 0 warning(s)\n");
  });

  it("a whole directory: OperatorAccessPolicy files are read and ignored", async () => {
    const r = await run([root("policies"), "--cluster", "hanzo-k8s"]);
    expect(r.code).toBe(0);
    expect(objects(r.out)).toHaveLength(9);
  });

  it("warnings go to stderr as file:line:col: warning: [code] …; the YAML stays on stdout", async () => {
    const r = await run([MESH, "--cluster", "hanzo-k8s", "--remote-cidr", "lux-k8s=10.244.0.0/16"]);
    expect(r.code).toBe(0);
    const lines = r.err.trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(/^zt netpol: 11 NetworkPolicy object\(s\) for cluster hanzo-k8s in 2 namespace\(s\), 7 warning\(s\)$/);
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
    for (const argv of [[], ["--bogus", SEED], [SEED, "--remote-cidr", "lux-k8s"], [SEED, "--remote-cidr", "lux-k8s=10.0.0.0/33"], [SEED, "--remote-cidr", "lux-k8s=banana"], [SEED, "--label", "bad label"], [SEED, "--cluster"]]) {
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
