import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, type DecisionBody, H, op, startTestEngine, svc, type TestEngine } from "./harness.js";

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine({ env: { ZT_MAX_BODY_BYTES: "65536", ZT_MAX_BATCH: "50" } });
});
afterAll(async () => {
  await e?.dispose();
});

const evaluate = <T = DecisionBody>(body: unknown, headers: Record<string, string> = {}) => call<T>(e.url, "POST", "/v1/evaluate", { body, headers });

describe("POST /v1/evaluate: service requests", () => {
  it("allows a declared dependency and names the rule", async () => {
    const r = await evaluate(svc("gateway", "postgres", 5432, { pod: "gateway-7f8b9c6d4-x2k9p", node: "worker-3" }));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: "ALLOW", enforced: true, policy_matched: "hanzo-core-policy/rule-2", reason: "allowed_by_rule" });
    expect(r.body.policy_version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.body.policy_version).toBe(e.store.current()!.version);
    expect(r.headers.get("x-zt-policy-version")).toBe(r.body.policy_version);
    expect(Number.isInteger(r.body.latency_us) && r.body.latency_us >= 0).toBe(true);
    expect(r.body.decision_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("denies an undeclared path, a wrong port and an undeclared source", async () => {
    const chatToPg = await evaluate(svc("chat", "postgres", 5432));
    expect(chatToPg.body).toMatchObject({ decision: "DENY", enforced: true, policy_matched: null, reason: "default_deny" });
    const wrongPort = await evaluate(svc("iam", "postgres", 5433));
    expect(wrongPort.body).toMatchObject({ decision: "DENY", reason: "default_deny" });
    const stranger = await evaluate({ source: { spiffe_id: "spiffe://evil.example/x" }, destination: { spiffe_id: H + "postgres", port: 5432 } });
    expect(stranger.body).toMatchObject({ decision: "DENY", reason: "undeclared_service" });
  });

  it("hands every decision to the audit sink with the seed's fields before answering", async () => {
    const r = await evaluate(svc("gateway", "postgres", 5432, { pod: "gateway-1", node: "worker-3" }));
    const rec = e.sink!.records().find((x) => x.decision_id === r.body.decision_id);
    expect(rec).toMatchObject({
      decision: "ALLOW",
      source: { spiffe_id: H + "gateway", pod: "gateway-1", node: "worker-3" },
      destination: { spiffe_id: H + "postgres", port: 5432 },
      operator: null,
      target: null,
      policy_matched: "hanzo-core-policy/rule-2",
      latency_us: r.body.latency_us,
      enforced: true,
      reason: "allowed_by_rule",
      policy_version: r.body.policy_version,
      origin: "engine:test",
      caller: "plaintext:127.0.0.1",
    });
    expect(rec!.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const deny = await evaluate(svc("chat", "redis", 6379));
    expect(e.sink!.records().find((x) => x.decision_id === deny.body.decision_id)).toMatchObject({ decision: "DENY", source: { pod: null, node: null } });
  });
});

describe("POST /v1/evaluate: operator requests", () => {
  it("applies roles and targets", async () => {
    expect((await evaluate(op(["sre"], "postgres", "write"))).body).toMatchObject({ decision: "ALLOW", policy_matched: "production-access/rule-1" });
    expect((await evaluate(op(["sre"], "chat", "logs"))).body).toMatchObject({ decision: "ALLOW" });
    expect((await evaluate(op(["developer"], "postgres", "read"))).body).toMatchObject({ decision: "DENY" });
    expect((await evaluate(op(["intern"], "chat", "logs"))).body).toMatchObject({ decision: "DENY", reason: "role_undeclared" });
  });

  it("needs MFA and an active incident for oncall", async () => {
    expect((await evaluate(op(["oncall"], "iam", "restart", false, "INC-1"))).body).toMatchObject({ decision: "DENY", reason: "condition_failed:requireMFA" });
    expect((await evaluate(op(["oncall"], "iam", "restart", true, "INC-404"))).body).toMatchObject({ decision: "DENY", reason: "condition_failed:requireIncident" });
    const r = await evaluate(op(["oncall"], "iam", "restart", true));
    expect(r.body).toMatchObject({ decision: "DENY", reason: "condition_failed:requireIncident" });
    const rec = e.sink!.records().find((x) => x.decision_id === r.body.decision_id);
    expect(rec).toMatchObject({ source: null, destination: null, operator: { subject: "alice@hanzo.ai", roles: ["oncall"], mfa: true, incident: null }, target: { service: "iam", action: "restart" } });
  });
});

describe("POST /v1/evaluate: batches", () => {
  it("answers an array with decisions in the same order, all from one version", async () => {
    const reqs = [svc("gateway", "postgres", 5432), svc("chat", "postgres", 5432), op(["sre"], "redis", "read"), svc("iam", "redis", 6379), op(["developer"], "iam", "write")];
    const r = await evaluate<DecisionBody[]>(reqs);
    expect(r.status).toBe(200);
    expect(r.body.map((d) => d.decision)).toEqual(["ALLOW", "DENY", "ALLOW", "ALLOW", "DENY"]);
    expect(new Set(r.body.map((d) => d.policy_version)).size).toBe(1);
    expect(new Set(r.body.map((d) => d.decision_id)).size).toBe(5);
    const ids = new Set(e.sink!.records().map((x) => x.decision_id));
    for (const d of r.body) expect(ids.has(d.decision_id)).toBe(true);
  });

  it("refuses empty and oversized batches", async () => {
    expect((await evaluate([])).body).toMatchObject({ error: { code: "empty_batch", path: "$" } });
    const big = Array.from({ length: 51 }, () => svc("gateway", "postgres", 5432));
    const r = await evaluate(big);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "batch_too_large", path: "$" } });
  });
});

describe("POST /v1/evaluate: malformed input", () => {
  const cases: Array<[string, unknown, string]> = [
    ["a number", 42, "$"],
    ["no request shape", { foo: 1 }, "$"],
    ["source not an object", { source: "x", destination: { spiffe_id: H + "a", port: 1 } }, "$.source"],
    ["missing destination", { source: { spiffe_id: H + "a" } }, "$.destination"],
    ["missing source id", { source: {}, destination: { spiffe_id: H + "a", port: 1 } }, "$.source.spiffe_id"],
    ["bad SPIFFE ID", { source: { spiffe_id: "http://x" }, destination: { spiffe_id: H + "a", port: 1 } }, "$.source.spiffe_id"],
    ["uppercase trust domain", { source: { spiffe_id: H + "a" }, destination: { spiffe_id: "spiffe://Hanzo.ai/a", port: 1 } }, "$.destination.spiffe_id"],
    ["port string", { source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", port: "5432" } }, "$.destination.port"],
    ["port out of range", { source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", port: 70000 } }, "$.destination.port"],
    ["port zero", { source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", port: 0 } }, "$.destination.port"],
    ["fractional port", { source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", port: 1.5 } }, "$.destination.port"],
    ["pod not a string", { source: { spiffe_id: H + "a", pod: 3 }, destination: { spiffe_id: H + "b", port: 1 } }, "$.source.pod"],
    ["unknown field", { source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", prot: 1 } }, "$.destination.prot"],
    ["both shapes", { ...svc("a", "b", 1), operator: {} }, "$.operator"],
    ["roles not an array", { operator: { subject: "a", roles: "sre", mfa: true }, target: { service: "x", action: "y" } }, "$.operator.roles"],
    ["empty role", { operator: { subject: "a", roles: ["sre", ""], mfa: true }, target: { service: "x", action: "y" } }, "$.operator.roles[1]"],
    ["mfa missing", { operator: { subject: "a", roles: [] }, target: { service: "x", action: "y" } }, "$.operator.mfa"],
    ["missing subject", { operator: { roles: [], mfa: false }, target: { service: "x", action: "y" } }, "$.operator.subject"],
    ["incident a number", { operator: { subject: "a", roles: [], mfa: false, incident: 7 }, target: { service: "x", action: "y" } }, "$.operator.incident"],
    ["missing target", { operator: { subject: "a", roles: [], mfa: false } }, "$.target"],
    ["empty action", { operator: { subject: "a", roles: [], mfa: false }, target: { service: "x", action: "" } }, "$.target.action"],
    // Text the audit trail cannot store (PostgreSQL text holds no NUL; a lone surrogate has no
    // UTF-8 form) is refused here, with its path, rather than turning into a refused audit
    // record and a DENY audit_unavailable.
    ["empty pod", { source: { spiffe_id: H + "a", pod: "" }, destination: { spiffe_id: H + "b", port: 1 } }, "$.source.pod"],
    ["NUL in node", { source: { spiffe_id: H + "a", node: "worker\u0000-3" }, destination: { spiffe_id: H + "b", port: 1 } }, "$.source.node"],
    ["lone surrogate in pod", { source: { spiffe_id: H + "a", pod: "gw-\ud800" }, destination: { spiffe_id: H + "b", port: 1 } }, "$.source.pod"],
    ["NUL in subject", { operator: { subject: "a\u0000", roles: [], mfa: false }, target: { service: "x", action: "y" } }, "$.operator.subject"],
    ["lone surrogate in a role", { operator: { subject: "a", roles: ["\udc00"], mfa: false }, target: { service: "x", action: "y" } }, "$.operator.roles[0]"],
    ["empty incident", { operator: { subject: "a", roles: [], mfa: false, incident: "" }, target: { service: "x", action: "y" } }, "$.operator.incident"],
    ["NUL in service", { operator: { subject: "a", roles: [], mfa: false }, target: { service: "x\u0000", action: "y" } }, "$.target.service"],
  ];
  for (const [name, body, path] of cases) {
    it(`400 for ${name} at ${path}`, async () => {
      const r = await evaluate<{ error: { code: string; message: string; path: string } }>(body);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("invalid_request");
      expect(r.body.error.path).toBe(path);
      expect(r.body.error.message.startsWith(path + ": ")).toBe(true);
    });
  }

  it("names the batch element at fault", async () => {
    const reqs = [svc("gateway", "postgres", 5432), svc("a", "b", 1), svc("a", "b", 1), { source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", port: -1 } }];
    const r = await evaluate<{ error: { path: string } }>(reqs);
    expect(r.status).toBe(400);
    expect(r.body.error.path).toBe("$[3].destination.port");
  });

  it("400 for invalid JSON, 413 for a body over the limit (declared or chunked)", async () => {
    const bad = await call<{ error: { code: string; path: string } }>(e.url, "POST", "/v1/evaluate", { raw: "{not json", headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "invalid_json", path: "$" });
    const huge = JSON.stringify({ ...svc("a", "b", 1), pad: "x".repeat(70_000) });
    const r = await call<{ error: { code: string } }>(e.url, "POST", "/v1/evaluate", { raw: huge, headers: { "content-type": "application/json" } });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe("body_too_large");
    const stream = new ReadableStream<Uint8Array>({
      start(ctrl) {
        for (let i = 0; i < 10; i++) ctrl.enqueue(new TextEncoder().encode("x".repeat(10_000)));
        ctrl.close();
      },
    });
    const chunked = await fetch(e.url + "/v1/evaluate", { method: "POST", body: stream, headers: { "content-type": "application/json" }, duplex: "half" } as RequestInit);
    expect(chunked.status).toBe(413);
    // The engine is still serving.
    expect((await evaluate(svc("gateway", "postgres", 5432))).status).toBe(200);
  });
});

describe("request ids and unknown routes", () => {
  it("echoes a valid x-request-id and generates one otherwise", async () => {
    const given = await evaluate(svc("gateway", "postgres", 5432), { "x-request-id": "req-abc.123" });
    expect(given.headers.get("x-request-id")).toBe("req-abc.123");
    const bad = await evaluate(svc("gateway", "postgres", 5432), { "x-request-id": "has spaces and ünïcode" });
    const generated = bad.headers.get("x-request-id")!;
    expect(generated).toMatch(/^[0-9a-f]{12}-[0-9a-z]+$/);
    const other = await call(e.url, "GET", "/v1/policies");
    expect(other.headers.get("x-request-id")).not.toBe(generated);
  });

  it("404 with a JSON error for an unknown route, carrying a request id", async () => {
    const r = await call<{ error: { code: string } }>(e.url, "GET", "/v1/nope");
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe("not_found");
    expect(r.headers.get("x-request-id")).toBeTruthy();
  });
});
