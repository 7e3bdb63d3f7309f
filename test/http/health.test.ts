// Health and failing closed: /healthz tells the truth, and an audit trail that refuses
// records turns enforced decisions into DENY (observe mode keeps the computed decision).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { call, type DecisionBody, startTestEngine, svc, type TestEngine } from "./harness.js";
import { parseMetrics, value } from "../metrics/metrics-text.js";

let e: TestEngine | null = null;
afterEach(async () => {
  await e?.dispose();
  e = null;
});

interface Health {
  status: string;
  reason: string | null;
  policy_version: string | null;
  audit: { accepting: boolean } | null;
}

describe("GET /healthz (health port)", () => {
  it("is 200 with the module version when a module is loaded and the audit sink accepts", async () => {
    e = await startTestEngine();
    const r = await call<Health>(e.healthUrl, "GET", "/healthz");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "ok", reason: null, policy_version: e.store.current()!.version, audit: { accepting: true } });
    expect(r.headers.get("x-request-id")).toBeTruthy();
    // Not on the API port.
    expect((await call(e.url, "GET", "/healthz")).status).toBe(404);
  });

  it("is 503 with a reason, and enforced decisions fail closed, when the audit sink refuses records", async () => {
    e = await startTestEngine();
    rmSync(join(e.dir, "audit"), { recursive: true, force: true });
    const h = await call<Health>(e.healthUrl, "GET", "/healthz");
    expect(h.status).toBe(503);
    expect(h.body.status).toBe("unavailable");
    expect(h.body.reason).toContain("audit sink not accepting records");
    const r = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: "DENY", enforced: true, reason: "audit_unavailable", policy_matched: null });
    const batch = await call<DecisionBody[]>(e.url, "POST", "/v1/evaluate", { body: [svc("gateway", "postgres", 5432), svc("iam", "redis", 6379)] });
    expect(batch.body.map((d) => d.reason)).toEqual(["audit_unavailable", "audit_unavailable"]);
    const { samples } = parseMetrics(await (await fetch(e.url + "/metrics")).text());
    expect(value(samples, "zt_evaluation_errors_total", { kind: "audit_unavailable" })).toBe(3);
  });

  it("observe mode keeps the computed decision when the audit sink refuses (nothing is enforced)", async () => {
    e = await startTestEngine({ env: { ZT_MODE: "observe" } });
    rmSync(join(e.dir, "audit"), { recursive: true, force: true });
    const r = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
    expect(r.body).toMatchObject({ decision: "ALLOW", enforced: false, reason: "allowed_by_rule" });
  });

  it("reports 503 while shutting down", async () => {
    e = await startTestEngine();
    const slow = new ReadableStream<Uint8Array>({
      async start(ctrl) {
        ctrl.enqueue(new TextEncoder().encode(JSON.stringify(svc("gateway", "postgres", 5432)).slice(0, 10)));
        await new Promise((res) => setTimeout(res, 300));
        ctrl.enqueue(new TextEncoder().encode(JSON.stringify(svc("gateway", "postgres", 5432)).slice(10)));
        ctrl.close();
      },
    });
    // An in-flight request (body still arriving) when close() starts.
    const inflight = fetch(e.url + "/v1/evaluate", { method: "POST", body: slow, headers: { "content-type": "application/json" }, duplex: "half" } as RequestInit);
    await new Promise((res) => setTimeout(res, 50));
    const closing = e.close();
    const h = await call<Health>(e.healthUrl, "GET", "/healthz");
    expect(h.status).toBe(503);
    expect(h.body.reason).toContain("shutting down");
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as DecisionBody).decision).toBe("ALLOW");
    await closing;
    await expect(fetch(e.url + "/v1/policies")).rejects.toThrow();
  });
});
