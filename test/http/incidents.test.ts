import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, type DecisionBody, op, startTestEngine, type TestEngine, TOKEN } from "./harness.js";

interface IncidentBody {
  incident: { id: string; description: string | null; expires_at: string | null; created_by: string | null };
  active: boolean;
}

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(async () => {
  await e?.dispose();
});

const oncall = (incident?: string) => call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: op(["oncall"], "postgres", "restart", true, incident) });

describe("incidents", () => {
  it("need the admin token for every incident endpoint", async () => {
    expect((await call(e.url, "PUT", "/v1/incidents/INC-1", { body: {} })).status).toBe(401);
    expect((await call(e.url, "GET", "/v1/incidents")).status).toBe(401);
    expect((await call(e.url, "DELETE", "/v1/incidents/INC-1")).status).toBe(401);
    expect((await call(e.url, "GET", "/v1/incidents", { token: "wrong-token-wrong-token" })).status).toBe(401);
  });

  it("an operator's incident counts only while it is active", async () => {
    expect((await oncall("INC-7")).body).toMatchObject({ decision: "DENY", reason: "condition_failed:requireIncident" });
    const put = await call<IncidentBody>(e.url, "PUT", "/v1/incidents/INC-7", { body: { description: "postgres failover" }, token: TOKEN });
    expect(put.status).toBe(201);
    expect(put.body.incident).toMatchObject({ id: "INC-7", description: "postgres failover", expires_at: null, created_by: "plaintext:127.0.0.1+admin-token" });
    expect((await oncall("INC-7")).body).toMatchObject({ decision: "ALLOW", policy_matched: "production-access/rule-3" });
    // Another incident id does not count.
    expect((await oncall("INC-8")).body.decision).toBe("DENY");
    const list = await call<{ incidents: Array<{ id: string }> }>(e.url, "GET", "/v1/incidents", { token: TOKEN });
    expect(list.body.incidents.map((i) => i.id)).toEqual(["INC-7"]);
    const del = await call(e.url, "DELETE", "/v1/incidents/INC-7", { token: TOKEN });
    expect(del.status).toBe(200);
    expect((await oncall("INC-7")).body.decision).toBe("DENY");
    expect((await call(e.url, "DELETE", "/v1/incidents/INC-7", { token: TOKEN })).status).toBe(404);
  });

  it("expire on their own", async () => {
    const r = await call<IncidentBody>(e.url, "PUT", "/v1/incidents/INC-9", { body: { ttl_seconds: 1 }, token: TOKEN });
    expect(r.status).toBe(201);
    expect(Date.parse(r.body.incident.expires_at!)).toBeGreaterThan(Date.now());
    expect((await oncall("INC-9")).body.decision).toBe("ALLOW");
    while (Date.now() <= Date.parse(r.body.incident.expires_at!)) await new Promise((res) => setTimeout(res, 50));
    expect((await oncall("INC-9")).body).toMatchObject({ decision: "DENY", reason: "condition_failed:requireIncident" });
    const list = await call<{ incidents: unknown[]; expired: Array<{ id: string }> }>(e.url, "GET", "/v1/incidents", { token: TOKEN });
    expect(list.body.expired.map((i) => i.id)).toContain("INC-9");
  });

  it("refuse bad ids and bad bodies with the JSON path", async () => {
    const cases: Array<[string, unknown, number, string]> = [
      ["INC-1", { expires_at: "tomorrow" }, 400, "$.expires_at"],
      ["INC-1", { expires_at: "2001-01-01T00:00:00Z" }, 400, "$.expires_at"],
      ["INC-1", { ttl_seconds: -5 }, 400, "$.ttl_seconds"],
      ["INC-1", { ttl_seconds: 5, expires_at: "2999-01-01T00:00:00Z" }, 400, "$.ttl_seconds"],
      ["INC-1", { severity: "high" }, 400, "$.severity"],
      ["INC-1", [1], 400, "$"],
      ["-bad", {}, 400, "id"],
    ];
    for (const [id, body, status, path] of cases) {
      const r = await call<{ error: { path: string } }>(e.url, "PUT", `/v1/incidents/${id}`, { body, token: TOKEN });
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(r.body.error.path).toBe(path);
    }
  });

  it("survive a restart (kept in the shared state, and in the replica's private cache)", async () => {
    await call(e.url, "PUT", "/v1/incidents/INC-42", { body: { expires_at: "2999-01-01T00:00:00Z" }, token: TOKEN });
    const index = join(e.dataDir, "state-cache", "index.json");
    expect(statSync(index).mode & 0o777).toBe(0o600);
    expect(readFileSync(index, "utf8")).toContain("INC-42");
    await e.close();
    e = await startTestEngine({ dir: e.dir, state: e.db! });
    expect((await oncall("INC-42")).body.decision).toBe("ALLOW");
    const one = await call<IncidentBody>(e.url, "GET", "/v1/incidents/INC-42", { token: TOKEN });
    expect(one.body).toMatchObject({ active: true, incident: { expires_at: "2999-01-01T00:00:00.000Z" } });
  });
});
