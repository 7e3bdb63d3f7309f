import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, H, op, startTestEngine, svc, type TestEngine } from "../http/harness.js";
import { requireProgram } from "../support/programs.js";
import { parseMetrics, value } from "./metrics-text.js";

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine({ env: { ZT_METRICS_MAX_SERIES: "10" } });
});
afterAll(async () => {
  await e?.dispose();
});

const scrape = async (base = e.url) => {
  const res = await fetch(base + "/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
};

describe("GET /metrics", () => {
  it("exposes the seed's metrics and ZT's own, and the numbers add up", async () => {
    for (let i = 0; i < 3; i++) await call(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
    await call(e.url, "POST", "/v1/evaluate", { body: [svc("chat", "postgres", 5432), svc("chat", "gateway", 4000)] });
    await call(e.url, "POST", "/v1/evaluate", { body: op(["sre"], "redis", "read") });
    const { samples, types } = parseMetrics(await scrape());
    expect(value(samples, "zt_decisions_total", { decision: "allow", source: H + "gateway", dest: H + "postgres" })).toBe(3);
    expect(value(samples, "zt_decisions_total", { decision: "deny", source: H + "chat", dest: H + "postgres" })).toBe(1);
    expect(value(samples, "zt_decisions_total", { decision: "allow", source: H + "chat", dest: H + "gateway" })).toBe(1);
    expect(value(samples, "zt_decisions_total", { decision: "allow", source: "operator", dest: "redis" })).toBe(1);
    expect(types.get("zt_decisions_total")).toBe("counter");
    expect(types.get("zt_evaluation_duration_seconds")).toBe("summary");
    for (const q of ["0.5", "0.9", "0.99"]) {
      const v = value(samples, "zt_evaluation_duration_seconds", { quantile: q });
      expect(v).toBeGreaterThan(0);
    }
    expect(value(samples, "zt_evaluation_duration_seconds_count")).toBe(6);
    expect(types.get("zt_svid_rotations_total")).toBe("counter");
    // The mesh agent exports the tunnel gauge (test/mesh); a metric nothing sets is not registered here.
    expect(types.has("zt_wireguard_peer_up")).toBe(false);
    expect(value(samples, "zt_policy_version_info", { version: e.store.current()!.version })).toBe(1);
    expect(value(samples, "zt_policy_reloads_total", { result: "success", trigger: "startup" })).toBe(1);
    expect(value(samples, "zt_audit_queue_depth")).toBe(0);
    expect(value(samples, "zt_evaluation_errors_total", { kind: "module_trap" })).toBe(0);
    expect(value(samples, "zt_policies")).toBe(2);
    // Served on the health port too.
    expect(parseMetrics(await scrape(e.healthUrl)).types.get("zt_decisions_total")).toBe("counter");
  });

  it("keeps labels bounded: unknown workloads are 'other' and series are capped", async () => {
    for (let i = 0; i < 40; i++) {
      await call(e.url, "POST", "/v1/evaluate", { body: { source: { spiffe_id: `spiffe://hanzo.ai/random/${i}/x` }, destination: { spiffe_id: `spiffe://elsewhere.example/svc-${i}`, port: 80 } } });
    }
    const names = ["iam", "gateway", "chat", "postgres", "redis"];
    for (const a of names) for (const b of names) await call(e.url, "POST", "/v1/evaluate", { body: svc(a, b, 1) });
    const { samples } = parseMetrics(await scrape());
    const decisions = samples.filter((s) => s.name === "zt_decisions_total");
    expect(value(samples, "zt_decisions_total", { decision: "deny", source: "other", dest: "other" })).toBeGreaterThanOrEqual(40);
    for (const s of decisions) {
      expect(s.labels.source === "other" || s.labels.source === "operator" || s.labels.source!.startsWith(H)).toBe(true);
      expect(s.labels.source).not.toContain("random");
    }
    // ZT_METRICS_MAX_SERIES=10 (source, dest) pairs, plus the shared ("other", "other") overflow.
    const pairs = new Set(decisions.map((s) => `${s.labels.source} ${s.labels.dest}`));
    expect(pairs.size).toBeLessThanOrEqual(11);
  });

  it("passes promtool check metrics", async () => {
    const promtool = requireProgram("promtool");
    const text = await scrape();
    let out: string;
    try {
      out = execFileSync(promtool, ["check", "metrics"], { input: text, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
    } catch (err) {
      const x = err as { stdout?: string; stderr?: string };
      throw new Error(`promtool check metrics failed:\n${x.stdout ?? ""}${x.stderr ?? ""}`);
    }
    expect(out.trim()).toBe("");
  });
});
