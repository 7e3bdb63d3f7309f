// GET /v1/sidecars and its metrics, fed by real ingest (the engine with its PostgreSQL audit
// trail): which version each sidecar origin decided with, against the active one.
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { parseMetrics, value } from "../metrics/metrics-text.js";
import { call, H, startTestEngine, type TestEngine, TOKEN } from "./harness.js";

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine({ audit: async (dir) => openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data") })) });
});
afterAll(async () => {
  await e?.dispose();
});

function record(origin: string, version: string, at: Date): Record<string, unknown> {
  return {
    timestamp: at.toISOString(),
    decision: "ALLOW",
    source: { spiffe_id: H + "gateway", pod: null, node: null },
    destination: { spiffe_id: H + "postgres", port: 5432 },
    operator: null,
    target: null,
    policy_matched: null,
    latency_us: 3,
    decision_id: randomUUID(),
    enforced: true,
    reason: "allowed_by_rule",
    policy_version: version,
    origin,
    caller: null,
  };
}

interface Snapshot {
  active_version: string;
  counts: Record<string, number>;
  by_version: Record<string, number>;
  sidecars: Array<{ origin: string; state: string; stale: boolean; current_version: string }>;
}

describe("GET /v1/sidecars", () => {
  it("is admin-only", async () => {
    expect((await call(e.url, "GET", "/v1/sidecars")).status).toBe(401);
  });

  it("shows each origin's version from the records it shipped, against the active one", async () => {
    const active = (await call<{ version: string; loaded_at: string }>(e.url, "GET", "/v1/policies")).body;
    const old = `sha256:${"a".repeat(64)}`;
    const now = new Date();
    const before = new Date(Date.parse(active.loaded_at) - 60_000);
    const r = await call(e.url, "POST", "/v1/audit/ingest", {
      token: TOKEN,
      body: { records: [record("envoy/pg-0", old, before), record("envoy/pg-0", active.version, now), record("envoy/chat-1", old, now), record("envoy/idle-2", old, before)] },
    });
    expect(r.status).toBe(200);
    const s = await call<Snapshot>(e.url, "GET", "/v1/sidecars", { token: TOKEN });
    expect(s.status).toBe(200);
    expect(s.body.active_version).toBe(active.version);
    expect(s.body.sidecars.map((x) => [x.origin, x.state, x.current_version])).toEqual([
      ["envoy/chat-1", "behind", old],
      ["envoy/idle-2", "idle", old],
      ["envoy/pg-0", "converged", active.version],
    ]);
    expect(s.body.by_version).toEqual({ [old]: 2, [active.version]: 1 });
    const { samples } = parseMetrics(await (await fetch(e.url + "/metrics")).text());
    expect(value(samples, "zt_sidecars", { state: "converged" })).toBe(1);
    expect(value(samples, "zt_sidecars", { state: "behind" })).toBe(1);
    expect(value(samples, "zt_sidecars", { state: "idle" })).toBe(1);
    expect(value(samples, "zt_sidecars", { state: "stale" })).toBe(0);
    expect(value(samples, "zt_sidecar_policy_versions", { policy_version: old })).toBe(2);
  });
});
