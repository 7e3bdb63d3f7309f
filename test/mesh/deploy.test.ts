// deploy/k8s/mesh and deploy/prometheus: the gateway's manifests pass their schemas, take the
// key from a Secret volume and nowhere else, carry the mesh document verbatim, and no file
// under deploy/ holds key material but the mesh's public keys. The alert rules pass
// `promtool check rules` and their unit tests (`promtool test rules`).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Document, parse as parseYaml, parseAllDocuments } from "yaml";
import { keyShapedRanges } from "../../compiler/mesh/keys.js";
import { meshFromText } from "../../compiler/mesh/load.js";
import { requireProgram } from "../support/programs.js";
import { validateObject } from "../netpol/schema.js";

const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const DIR = root("deploy/k8s/mesh");
const MESH_FILE = root("mesh/hanzo-lux.yaml");

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };

function manifests(): Array<{ file: string; obj: Obj }> {
  const out: Array<{ file: string; obj: Obj }> = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort()) {
    for (const d of parseAllDocuments(readFileSync(join(DIR, file), "utf8")) as Document[]) {
      expect(d.errors, file).toEqual([]);
      out.push({ file, obj: d.toJS() as Obj });
    }
  }
  return out;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function expectedConfigMap(): string {
  const cm = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "zt-wireguard-mesh", namespace: "hanzo", labels: { app: "zt-wireguard-gateway", "app.kubernetes.io/name": "zt-wireguard-gateway", "app.kubernetes.io/part-of": "zt" } },
    data: { "hanzo-lux.yaml": readFileSync(MESH_FILE, "utf8") },
  };
  const header = [
    "# The mesh document the gateway agent watches, a verbatim copy of mesh/hanzo-lux.yaml",
    "# (test/mesh/deploy.test.ts fails when they drift). Public data only: the private key is the",
    "# Secret zt-wireguard-key. Regenerate: ZT_UPDATE_GOLDEN=1 npx vitest run test/mesh/deploy.test.ts",
  ].join("\n");
  return `${header}\n${new Document(cm).toString({ lineWidth: 0, blockQuote: "literal" })}`;
}

describe("deploy/k8s/mesh: the WireGuard gateway", () => {
  it("every object passes its schema, in namespace hanzo, and the kustomization lists every file", () => {
    const all = manifests();
    expect(all.map((m) => `${m.obj.kind}/${m.obj.metadata.name}`).sort()).toEqual(["ConfigMap/zt-wireguard-mesh", "Deployment/zt-wireguard-gateway", "Service/zt-wireguard-gateway", "ServiceAccount/zt-wireguard-gateway"]);
    for (const { file, obj } of all) {
      expect(() => validateObject(obj), file).not.toThrow();
      expect(obj.metadata.namespace, file).toBe("hanzo");
    }
    const k = parseYaml(readFileSync(join(DIR, "kustomization.yaml"), "utf8")) as { resources: string[] };
    expect([...k.resources].sort()).toEqual(readdirSync(DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort());
  });

  it("the ConfigMap carries mesh/hanzo-lux.yaml verbatim", () => {
    const want = expectedConfigMap();
    if (process.env.ZT_UPDATE_GOLDEN) writeFileSync(join(DIR, "configmap-mesh.yaml"), want);
    expect(readFileSync(join(DIR, "configmap-mesh.yaml"), "utf8")).toBe(want);
  });

  it("the Deployment: NET_ADMIN only, the key from the Secret volume where the document says, the agent on the mesh file", () => {
    const mesh = meshFromText(readFileSync(MESH_FILE, "utf8"), MESH_FILE);
    if (!mesh.ok) throw new Error(JSON.stringify(mesh.errors));
    const dep = manifests().find((m) => m.obj.kind === "Deployment")!.obj as unknown as {
      spec: { replicas: number; template: { spec: { containers: Array<{ args: string[]; env?: unknown[]; envFrom?: unknown[]; securityContext: { capabilities: { add: string[]; drop: string[] } }; volumeMounts: Array<{ name: string; mountPath: string }> }>; volumes: Array<{ name: string; secret?: { secretName: string; defaultMode: number; items: Array<{ key: string; path: string }> }; configMap?: { name: string } }> } } };
    };
    expect(dep.spec.replicas).toBe(1);
    const pod = dep.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["NET_ADMIN"] });
    expect(c.env ?? []).toEqual([]);
    expect(c.envFrom ?? []).toEqual([]);
    const cluster = c.args[c.args.indexOf("--cluster") + 1]!;
    const self = mesh.mesh.clusters.find((x) => x.name === cluster)!;
    expect(self, `--cluster ${cluster} is in the mesh`).toBeDefined();
    const keyVolume = pod.volumes.find((v) => v.secret)!;
    expect(keyVolume.secret!.secretName).toBe("zt-wireguard-key");
    expect(keyVolume.secret!.defaultMode).toBe(0o400);
    const keyMount = c.volumeMounts.find((m) => m.name === keyVolume.name)!;
    expect(join(keyMount.mountPath, keyVolume.secret!.items[0]!.path)).toBe(self.privateKeyFile);
    const meshVolume = pod.volumes.find((v) => v.configMap?.name === "zt-wireguard-mesh")!;
    const meshMount = c.volumeMounts.find((m) => m.name === meshVolume.name)!;
    expect(c.args.slice(0, 3)).toEqual(["mesh", "agent", join(meshMount.mountPath, "hanzo-lux.yaml")]);
    expect(dirname(self.privateKeyFile)).not.toBe(meshMount.mountPath);
  });

  it("no file under deploy/ holds a Secret or key material, only the mesh's public keys", () => {
    const mesh = meshFromText(readFileSync(MESH_FILE, "utf8"), MESH_FILE);
    if (!mesh.ok) throw new Error("mesh");
    const publicKeys = new Set(mesh.mesh.clusters.map((c) => c.publicKey));
    for (const file of filesUnder(root("deploy"))) {
      const text = readFileSync(file, "utf8");
      expect(text, file).not.toMatch(/^kind:\s*Secret\s*$/m);
      for (const [s, e] of keyShapedRanges(text, 0, text.length)) expect(publicKeys.has(text.slice(s, e)), `${file}: key material at offset ${s}`).toBe(true);
    }
  });
});

describe("deploy/prometheus/zt-mesh-rules.yaml", () => {
  it("passes promtool check rules and its unit tests (key age > 90 days, peer down)", () => {
    const promtool = requireProgram("promtool");
    const dir = root("deploy/prometheus");
    expect(execFileSync(promtool, ["check", "rules", join(dir, "zt-mesh-rules.yaml")], { encoding: "utf8" })).toContain("SUCCESS: 4 rules found");
    expect(execFileSync(promtool, ["test", "rules", "zt-mesh-rules.test.yaml"], { cwd: dir, encoding: "utf8" })).toContain("SUCCESS");
  });
});
