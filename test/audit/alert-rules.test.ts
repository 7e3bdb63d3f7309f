// The audit trail's alert rules (deploy/prometheus/zt-audit-rules.yaml): promtool accepts
// them, `promtool test rules` shows each alert firing on its condition and quiet otherwise,
// and every metric they use is one the engine or `zt audit verify` really exports.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { registerAuditMetrics } from "../../host/audit/metrics.js";
import { verifyRegistry } from "../../host/cli/audit-verify-output.js";
import { requireProgram } from "../support/programs.js";

const RULES = "deploy/prometheus/zt-audit-rules.yaml";

function promtool(...args: string[]): string {
  try {
    return execFileSync(requireProgram("promtool"), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(" ")} failed:\n${x.stdout ?? ""}${x.stderr ?? ""}`);
  }
}

describe("audit alert rules", () => {
  it("pass promtool check rules", () => {
    expect(promtool("check", "rules", RULES)).toMatch(/SUCCESS: 4 rules found/);
  });

  it("fire on their conditions and stay quiet otherwise (promtool test rules)", () => {
    expect(promtool("test", "rules", "test/audit/fixtures/zt-audit-rules.test.yaml")).toMatch(/SUCCESS/);
  });

  it("use only metrics the engine and zt audit verify export", async () => {
    const engine = new Registry();
    registerAuditMetrics(engine, {
      counters: { written: 0, duplicates: 0, conflicts: 0, dropped: 0, rejected: 0, spooled: 0, replayed: 0 },
      queueDepth: 0,
      backlog: 0,
      postgresUp: true,
      lagMs: 0,
      checkpoints: { latest: null, latestAtMs: null, written: 0, failures: { directory: 0, witness: 0 } },
      startedAtMs: Date.now(),
    });
    const verify = verifyRegistry({ report: null, error: "x" });
    const exported = new Set([...(await engine.getMetricsAsJSON()), ...(await verify.getMetricsAsJSON())].map((m) => m.name));
    const doc = parse(readFileSync(RULES, "utf8")) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    for (const rule of doc.groups.flatMap((g) => g.rules)) {
      const names = [...rule.expr.matchAll(/\bzt_[a-z_]+/g)].map((m) => m[0]);
      expect(names.length, rule.alert).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n), `${rule.alert} uses ${n}`).toBe(true);
    }
  });

  it("zt audit verify's metrics file passes promtool check metrics", async () => {
    const text = await verifyRegistry({ report: null, error: "x" }).metrics();
    expect(execFileSync(requireProgram("promtool"), ["check", "metrics"], { input: text, encoding: "utf8" }).trim()).toBe("");
    expect(text).toMatch(/^zt_audit_verify_ok 0$/m);
  });
});
