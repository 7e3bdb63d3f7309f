// The policy ConfigMap as the kubelet mounts it: files are symlinks into `..data`, itself a
// symlink to a timestamped directory; an update writes a new directory and swaps `..data` with
// one rename (Kubernetes' AtomicWriter). The engine must pick the swap up without a restart.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POLICIES_DIR } from "../support/seed.js";
import { call, type DecisionBody, H, startTestEngine, svc, type TestEngine } from "../http/harness.js";

let e: TestEngine;
let generation = 0;

/** Writes `files` as the kubelet would: a new timestamped directory, then an atomic `..data` swap. */
function project(dir: string, files: Record<string, string>): void {
  const stamp = `..2026_12_06_00_00_00.${++generation}`;
  mkdirSync(join(dir, stamp));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, stamp, name), text);
  symlinkSync(stamp, join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  for (const name of Object.keys(files)) {
    try {
      symlinkSync(join("..data", name), join(dir, name));
    } catch {
      // the link exists from an earlier generation and already points through ..data
    }
  }
  for (const old of readdirSync(dir)) if (old.startsWith("..2026") && old !== stamp) rmSync(join(dir, old), { recursive: true, force: true });
}

const extra = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: search-db
spec:
  rules:
    - from:
        spiffe: "${H}search"
      to:
        - spiffe: "${H}postgres"
          ports: [5432]
  defaultAction: DENY
`;

function seedFiles(): Record<string, string> {
  return Object.fromEntries(readdirSync(POLICIES_DIR).filter((f) => f.endsWith(".yaml")).map((f) => [f, readFileSync(join(POLICIES_DIR, f), "utf8")]));
}

beforeAll(async () => {
  e = await startTestEngine({ seedPolicies: false, state: false, env: { ZT_RESCAN_INTERVAL_MS: "300" } });
  project(e.policyDir, seedFiles());
  await e.store.reloadFiles("file");
});
afterAll(async () => {
  await e?.dispose();
});

describe("a ConfigMap mount", () => {
  it("reads the policies through the ..data links, and follows a ..data swap", async () => {
    expect(e.store.current()!.policies.map((p) => p.name)).toEqual(["hanzo-core-policy", "production-access"]);
    const evaluate = (body: unknown) => call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body });
    expect((await evaluate(svc("search", "postgres", 5432))).body.decision).toBe("DENY");
    const v0 = e.store.current()!.version;
    project(e.policyDir, { ...seedFiles(), "search-db.yaml": extra });
    while (e.store.current()!.version === v0) await new Promise((r) => setTimeout(r, 50));
    expect(e.store.current()!.policies.map((p) => p.name)).toEqual(["hanzo-core-policy", "production-access", "search-db"]);
    expect((await evaluate(svc("search", "postgres", 5432))).body.decision).toBe("ALLOW");
    expect(e.store.lastReload()).toMatchObject({ result: "success", trigger: "file" });
  });
});
