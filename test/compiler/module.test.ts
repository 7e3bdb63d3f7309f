// The module contract: reproducible bytes, self-description, imports Envoy can satisfy,
// and failing closed without a valid image.
import { cpSync, mkdtempSync, readFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compilePolicySet, loadEvaluator, sha256Hex } from "../../compiler/compile.js";
import { linkModule, MANIFEST_SECTION } from "../../compiler/link.js";
import { loadPolicyFiles } from "../../compiler/load.js";
import { hostImports, PolicyRuntime } from "../../host/engine/runtime.js";
import { POLICIES_DIR, seedModule } from "../support/seed.js";

describe("policy module", () => {
  it("is byte-for-byte reproducible whatever the file order and file names", async () => {
    const files = [join(POLICIES_DIR, "hanzo-core-policy.yaml"), join(POLICIES_DIR, "production-access.yaml")];
    const a = await loadPolicyFiles(files);
    const b = await loadPolicyFiles([...files].reverse());
    const dir = mkdtempSync(join(tmpdir(), "zt-repro-"));
    cpSync(POLICIES_DIR, dir, { recursive: true });
    renameSync(join(dir, "hanzo-core-policy.yaml"), join(dir, "zzz.yaml"));
    const c = await loadPolicyFiles([dir]);
    if (!a.ok || !b.ok || !c.ok) throw new Error("seed policies must load");
    const [ma, mb, mc] = [compilePolicySet(a.set), compilePolicySet(b.set), compilePolicySet(c.set)];
    expect(Buffer.from(mb.wasm).equals(Buffer.from(ma.wasm))).toBe(true);
    expect(Buffer.from(mc.wasm).equals(Buffer.from(ma.wasm))).toBe(true);
    expect(ma.version).toBe(`sha256:${sha256Hex(ma.wasm)}`);
  });

  it("describes itself: manifest section, policy and rule names, version", async () => {
    const { module } = await seedModule();
    const mod = new WebAssembly.Module(module.wasm);
    const [section] = WebAssembly.Module.customSections(mod, MANIFEST_SECTION);
    const manifest = JSON.parse(new TextDecoder().decode(section!));
    expect(manifest.policies).toEqual([
      { name: "hanzo-core-policy", kind: "ServiceAccessPolicy", first_rule: 0, rules: 3 },
      { name: "production-access", kind: "OperatorAccessPolicy", first_rule: 3, rules: 3 },
    ]);
    const rt = await PolicyRuntime.load(module.wasm);
    expect(rt.version).toBe(module.version);
    expect([0, 1, 2, 3, 4, 5].map((i) => rt.ruleId(i))).toEqual([
      "hanzo-core-policy/rule-1",
      "hanzo-core-policy/rule-2",
      "hanzo-core-policy/rule-3",
      "production-access/rule-1",
      "production-access/rule-2",
      "production-access/rule-3",
    ]);
    expect(rt.ruleId(6)).toBeNull();
  });

  it("imports nothing a proxy-wasm host (Envoy) does not provide", async () => {
    const { module } = await seedModule();
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(module.wasm));
    for (const imp of imports) {
      expect(imp.kind).toBe("function");
      const ok = (imp.module === "env" && imp.name.startsWith("proxy_")) || imp.module === "wasi_snapshot_preview1";
      expect(ok, `${imp.module}.${imp.name}`).toBe(true);
    }
    const names = imports.map((i) => i.name);
    for (const forbidden of ["abort", "seed", "Date.now", "trace", "console.log"]) expect(names).not.toContain(forbidden);
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(module.wasm)).map((e) => e.name);
    expect(exports).toEqual(expect.arrayContaining(["memory", "_initialize", "zt_eval_service", "zt_eval_operator"]));
  });

  it("the evaluator alone (no policy image) is refused by the runtime and denies everything", async () => {
    const bare = loadEvaluator();
    await expect(PolicyRuntime.load(bare)).rejects.toThrow(/zt.manifest/);
    const bareMod = new WebAssembly.Module(bare);
    const inst = new WebAssembly.Instance(bareMod, hostImports(bareMod));
    const ex = inst.exports as unknown as { _initialize(): void; zt_ready(): number; zt_eval_service(a: number, b: number, c: number): number };
    ex._initialize();
    expect(ex.zt_ready()).toBe(0);
    expect(ex.zt_eval_service(10, 10, 1) & 15).toBe(8); // internal_error: deny
  });

  it("a corrupt image fails closed", async () => {
    const image = new Uint8Array(64).fill(7);
    const { wasm } = linkModule(loadEvaluator(), image, new TextEncoder().encode("{}"));
    await expect(PolicyRuntime.load(wasm)).rejects.toThrow(/no valid policy image/);
  });

  it("start-up is idempotent", async () => {
    const { module } = await seedModule();
    const mod = new WebAssembly.Module(module.wasm);
    const inst = new WebAssembly.Instance(mod, hostImports(mod));
    const ex = inst.exports as unknown as { _initialize(): void; zt_ready(): number; zt_io(): number };
    ex._initialize();
    const io = ex.zt_io();
    ex._initialize();
    expect(ex.zt_ready()).toBe(1);
    expect(ex.zt_io()).toBe(io);
  });

  it("links policies into the prebuilt evaluator without recompiling it", async () => {
    const { module } = await seedModule();
    const evaluator = readFileSync(new URL("../../build/evaluator.wasm", import.meta.url));
    expect(module.manifest.evaluator_sha256).toBe(sha256Hex(evaluator));
  });
});
