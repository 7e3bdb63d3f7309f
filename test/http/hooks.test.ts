// The extension points the identity layer plugs into: who is asking POST /v1/evaluate, may
// they ask about this source, and extra admin authenticators next to the token.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, type DecisionBody, H, startTestEngine, svc, type TestEngine } from "./harness.js";

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine({
    engine: {
      identifyEvaluateCaller: (c) => {
        const who = c.req.header("x-test-peer");
        if (who === undefined) return new Response(JSON.stringify({ error: { code: "unauthenticated", message: "no peer" } }), { status: 401, headers: { "content-type": "application/json" } });
        return `mtls:${who}`;
      },
      authorizeEvaluate: (caller, items) => {
        for (const it of items) {
          if (it.kind === "service" && `mtls:${it.source.spiffe_id}` !== caller) {
            return new Response(JSON.stringify({ error: { code: "source_not_caller", message: "ask only about yourself" } }), { status: 403, headers: { "content-type": "application/json" } });
          }
        }
        return null;
      },
      authenticators: [(c) => (c.req.header("x-test-admin") === "yes" ? "mtls:spiffe://hanzo.ai/admin" : null)],
    },
  });
});
afterAll(async () => {
  await e?.dispose();
});

describe("identity hooks", () => {
  it("identifies the caller, records it, and refuses questions about others", async () => {
    expect((await call(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) })).status).toBe(401);
    const ok = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432), headers: { "x-test-peer": H + "gateway" } });
    expect(ok.status).toBe(200);
    expect(e.sink!.records().find((r) => r.decision_id === ok.body.decision_id)!.caller).toBe(`mtls:${H}gateway`);
    const other = await call(e.url, "POST", "/v1/evaluate", { body: svc("chat", "postgres", 5432), headers: { "x-test-peer": H + "gateway" } });
    expect(other.status).toBe(403);
  });

  it("accepts an extra admin authenticator next to the token", async () => {
    expect((await call(e.url, "PUT", "/v1/incidents/INC-5", { body: {} })).status).toBe(401);
    const r = await call<{ incident: { created_by: string } }>(e.url, "PUT", "/v1/incidents/INC-5", { body: {}, headers: { "x-test-admin": "yes" } });
    expect(r.status).toBe(201);
    expect(r.body.incident.created_by).toBe("mtls:spiffe://hanzo.ai/admin");
  });
});
