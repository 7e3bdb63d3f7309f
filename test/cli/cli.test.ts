// The zt CLI as users run it: the built dist/host/cli/main.js in a child process.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../compiler/compile.js";

const CLI = "dist/host/cli/main.js";
const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";

function zt(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("zt CLI", () => {
  it("check: valid policies print a summary and exit 0", () => {
    const r = zt("check", "policies");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, rules: 6 });
  });

  it("check: invalid policies print file:line:col errors on stderr and exit 1, no stack trace", () => {
    const r = zt("check", "test/compiler/fixtures/bad-operator.yaml");
    expect(r.code).toBe(1);
    expect(r.err).toContain("test/compiler/fixtures/bad-operator.yaml:11:13: spec.rules[1].role");
    expect(r.err).toContain("7 errors");
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("check: AccessRoute documents beside policies are validated, across files too", () => {
    const ok = zt("check", "policies", "test/compiler/fixtures/routes/good.yaml");
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.out).documents as Array<{ kind: string }>).filter((d) => d.kind === "AccessRoute")).toHaveLength(5);
    const bad = zt("check", "policies", "test/compiler/fixtures/routes/bad.yaml");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('test/compiler/fixtures/routes/bad.yaml:8:7: spec.to "http://grafana:3000": the scheme must be https');
    const dup = zt("check", "test/compiler/fixtures/routes/dup");
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('dup/b.yaml:4:7: duplicate AccessRoute name "one"');
  });

  it("build: writes the module and prints its version (sha256 of the bytes)", () => {
    const out = join(mkdtempSync(join(tmpdir(), "zt-cli-")), "policy.wasm");
    const r = zt("build", "policies", "-o", out);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.out);
    expect(printed.version).toBe(`sha256:${sha256Hex(readFileSync(out))}`);
  });

  it("eval: service request against a built module; ALLOW exits 0, DENY exits 3", () => {
    const out = join(mkdtempSync(join(tmpdir(), "zt-cli-")), "policy.wasm");
    expect(zt("build", "policies", "-o", out).code).toBe(0);
    const allow = zt("eval", out, "--source", H + "gateway", "--destination", H + "postgres", "--port", "5432");
    expect(allow.code).toBe(0);
    expect(JSON.parse(allow.out)).toMatchObject({ decision: "ALLOW", policy_matched: "hanzo-core-policy/rule-2", reason: "allowed_by_rule" });
    const deny = zt("eval", "policies", "--source", H + "chat", "--destination", H + "postgres", "--port", "5432");
    expect(deny.code).toBe(3);
    expect(JSON.parse(deny.out)).toMatchObject({ decision: "DENY", policy_matched: null, reason: "default_deny" });
  });

  it("eval: operator form", () => {
    const r = zt("eval", "policies", "--roles", "oncall", "--service", "postgres", "--action", "restart", "--mfa");
    expect(r.code).toBe(3);
    expect(JSON.parse(r.out)).toMatchObject({ decision: "DENY", reason: "condition_failed:requireIncident", policy_matched: "production-access/rule-3" });
  });

  it("usage errors exit 2 with a message", () => {
    expect(zt("eval", "policies", "--source", H + "chat").code).toBe(2);
    expect(zt("eval", "policies", "--source", "a", "--destination", "b", "--port", "http").err).toContain("--port must be an integer");
    expect(zt("frobnicate").code).toBe(2);
    expect(zt("build", "policies").code).toBe(2);
  });
});
