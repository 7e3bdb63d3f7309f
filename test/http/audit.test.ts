// The engine with the real audit trail (host/audit: AuditWriter on embedded PostgreSQL):
// every decision reaches PostgreSQL, and the audit routes sit behind the admin auth.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { type Audit, auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { call, type DecisionBody, H, op, startTestEngine, svc, type TestEngine, TOKEN } from "./harness.js";
import { parseMetrics, value } from "../metrics/metrics-text.js";
import { requireProgram } from "../support/programs.js";

let e: TestEngine;
let audit: Audit;
beforeAll(async () => {
  // A small memory bound, so that a burst of batches outruns the writer thread, and a wait
  // bound far beyond it, so that the backpressure test does not depend on the machine's speed.
  e = await startTestEngine({
    env: { ZT_AUDIT_BACKPRESSURE_MS: "60000" },
    audit: async (dir) => (audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data"), ZT_AUDIT_MAX_QUEUE: "1200" }))),
  });
});
afterAll(async () => {
  await e?.dispose();
});

interface AuditPage {
  records: Array<{ decision_id: string; decision: string; enforced: boolean; policy_version: string; source: { spiffe_id: string } | null; operator: { subject: string } | null; reason: string }>;
}

async function auditFor(ids: string[], query: string): Promise<AuditPage["records"]> {
  // The writer commits asynchronously; poll until every decision is in PostgreSQL.
  for (;;) {
    const r = await call<AuditPage>(e.url, "GET", `/v1/audit?${query}`, { token: TOKEN });
    expect(r.status).toBe(200);
    const got = r.body.records.filter((x) => ids.includes(x.decision_id));
    if (got.length === ids.length) return got;
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe("engine + PostgreSQL audit trail", () => {
  it("is healthy with the real sink", async () => {
    const h = await call<{ status: string; audit: { accepting: boolean; detail: string } }>(e.healthUrl, "GET", "/healthz");
    expect(h.status).toBe(200);
    expect(h.body.audit.accepting).toBe(true);
  });

  it("stores every decision, allow and deny, service and operator", async () => {
    const single = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432, { pod: "gw-1", node: "worker-3" }) });
    const batch = await call<DecisionBody[]>(e.url, "POST", "/v1/evaluate", { body: [svc("chat", "postgres", 5432), svc("iam", "redis", 6379)] });
    const oper = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: op(["sre"], "postgres", "read") });
    const svcIds = [single.body.decision_id, ...batch.body.map((d) => d.decision_id)];
    const rows = await auditFor(svcIds, "limit=1000");
    const byId = new Map(rows.map((r) => [r.decision_id, r]));
    expect(byId.get(single.body.decision_id)).toMatchObject({ decision: "ALLOW", enforced: true, reason: "allowed_by_rule", policy_version: single.body.policy_version, source: { spiffe_id: H + "gateway" } });
    expect(byId.get(batch.body[0]!.decision_id)).toMatchObject({ decision: "DENY", reason: "default_deny" });
    const ops = await auditFor([oper.body.decision_id], "subject=alice%40hanzo.ai");
    expect(ops[0]).toMatchObject({ decision: "ALLOW", operator: { subject: "alice@hanzo.ai" } });
  });

  it("filters by reason (exactly or by prefix) and by the incident an operator referenced", async () => {
    const d = await call<DecisionBody[]>(e.url, "POST", "/v1/evaluate", {
      body: [op(["oncall"], "chat", "restart", false, "INC-42"), op(["oncall"], "chat", "restart", true, "INC-43"), svc("chat", "iam", 8000)],
    });
    const [noMfa, noIncident, denied] = d.body.map((x) => x.decision_id) as [string, string, string];
    expect((await auditFor([noMfa, noIncident], "reason=condition_failed:*")).map((r) => r.reason).sort()).toEqual([
      "condition_failed:requireIncident",
      "condition_failed:requireMFA",
    ]);
    const exact = await call<AuditPage>(e.url, "GET", "/v1/audit?reason=condition_failed:requireMFA", { token: TOKEN });
    expect(exact.body.records.map((r) => r.decision_id)).toEqual([noMfa]);
    expect((await auditFor([denied], "reason=default_deny")).map((r) => r.decision_id)).toContain(denied);
    // `_` and `%` are literal, not LIKE wildcards.
    expect((await call<AuditPage>(e.url, "GET", "/v1/audit?reason=default%25*", { token: TOKEN })).body.records).toEqual([]);
    const byIncident = await call<AuditPage>(e.url, "GET", "/v1/audit?incident=INC-43", { token: TOKEN });
    expect(byIncident.body.records.map((r) => r.decision_id)).toEqual([noIncident]);
  });

  it("keeps audit data behind the admin auth", async () => {
    for (const path of ["/v1/audit", "/v1/graph", "/v1/audit/ingest"]) {
      const method = path.endsWith("ingest") ? "POST" : "GET";
      expect((await call(e.url, method, path, { body: method === "POST" ? { records: [] } : undefined })).status).toBe(401);
      expect((await call(e.url, method, path, { token: "definitely-not-the-token", body: method === "POST" ? { records: [] } : undefined })).status).toBe(401);
    }
    const g = await call<{ edges: unknown[] }>(e.url, "GET", "/v1/graph", { token: TOKEN });
    expect(g.status).toBe(200);
  });

  it("a burst larger than the audit queue waits for room instead of failing closed: no decision is audit_unavailable, no record is dropped", async () => {
    // 40 concurrent batches of 100 = 4,000 decisions against a bound of 1,200 records in memory.
    const batch = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? svc("gateway", "postgres", 5432) : svc("chat", "postgres", 5432)));
    const replies = await Promise.all(Array.from({ length: 40 }, () => call<DecisionBody[]>(e.url, "POST", "/v1/evaluate", { body: batch })));
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.body.map((d) => d.reason)).toEqual(batch.map((_, i) => (i % 2 === 0 ? "allowed_by_rule" : "default_deny")));
    }
    const { samples } = parseMetrics(await (await fetch(e.url + "/metrics")).text());
    expect(value(samples, "zt_audit_backpressure_total", { outcome: "admitted" })).toBeGreaterThan(0);
    expect(value(samples, "zt_audit_backpressure_total", { outcome: "timed_out" })).toBe(0);
    expect(value(samples, "zt_evaluation_errors_total", { kind: "audit_unavailable" })).toBe(0);
    expect(value(samples, "zt_audit_dropped_total")).toBe(0);
    // And every one of the 4,000 reaches PostgreSQL.
    await audit.sink.flush();
    const ids = replies.flatMap((r) => r.body.map((d) => d.decision_id));
    const sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
    try {
      const [row] = await sql`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`;
      expect(row?.n).toBe(4000);
    } finally {
      await sql.end();
    }
  });

  it("exposes one audit queue gauge (the audit trail's own) and still passes promtool", async () => {
    const text = await (await fetch(e.url + "/metrics")).text();
    const { samples, types } = parseMetrics(text);
    expect(types.get("zt_audit_queue_depth")).toBe("gauge");
    expect(samples.filter((s) => s.name === "zt_audit_queue_depth")).toHaveLength(1);
    expect(execFileSync(requireProgram("promtool"), ["check", "metrics"], { input: text, encoding: "utf8" }).trim()).toBe("");
  });
});
