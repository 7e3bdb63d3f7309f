// POST /v1/tests: PolicyTest documents run against the active module, or against a candidate
// made of the active policies with some replaced; admin only; bad documents are a 422 with
// every line:col, never a crash.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rolloutExtension } from "../../host/rollout/extension.js";
import { call, startTestEngine, type TestEngine, TOKEN } from "../http/harness.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const SHIPPED_TESTS = readFileSync("policies/tests/hanzo.test.yaml", "utf8");

describe("POST /v1/tests", () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await startTestEngine({ engine: { extensions: [rolloutExtension()] } });
  });
  afterAll(async () => engine.dispose());

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field
  const post = (raw: string, token: string | null = TOKEN) => call<Record<string, any>>(engine.url, "POST", "/v1/tests", { raw, token, headers: { "content-type": "application/yaml" } });

  it("runs the shipped tests against the active module", async () => {
    const r = await post(SHIPPED_TESTS);
    expect(r.status).toBe(200);
    expect(r.body.policy_version).toBe(engine.store.current()!.version);
    expect(r.body.summary).toEqual({ total: 13, pass: 13, fail: 0 });
    expect(r.body.coverage).toMatchObject({ rules: 6, covered: 6 });
  });

  it("against a candidate: policies in the body replace the active ones of the same name", async () => {
    const core = readFileSync("policies/hanzo-core-policy.yaml", "utf8").replace("ports: [4000]", "ports: [4001]");
    const r = await post(`${core}\n---\n${SHIPPED_TESTS}`);
    expect(r.status).toBe(200);
    expect(r.body.policy_version).not.toBe(engine.store.current()!.version);
    expect(r.body.summary).toEqual({ total: 13, pass: 12, fail: 1 });
    const failed = r.body.cases.find((c: { result: string }) => c.result === "fail");
    expect(failed).toMatchObject({ id: "hanzo-core/chat-reaches-gateway", file: "body", actual: { decision: "DENY", reason: "default_deny" }, mismatches: ["decision", "rule"] });
    // The active module is untouched.
    expect((await post(SHIPPED_TESTS)).body.summary.fail).toBe(0);
  });

  it("admin only", async () => {
    expect((await post(SHIPPED_TESTS, null)).status).toBe(401);
    expect((await post(SHIPPED_TESTS, "wrong-token-0123456789")).status).toBe(401);
  });

  it("bad documents: 422 with every line:col; no tests or an empty body: 400", async () => {
    const bad = await post(`apiVersion: zt.hanzo.ai/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n  cases:\n    - request: {source: "${H}a", destination: "${H}b", port: x}\n      expect: {decision: ALLOW}\n`);
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("invalid_document");
    expect(bad.body.error.errors).toEqual([expect.stringMatching(/^6:\d+: spec\.cases\[0\]\.request\.port must be an integer, got a string$/)]);
    const yaml = await post("cases: [\n");
    expect(yaml.status).toBe(422);
    expect(yaml.body.error.errors[0]).toMatch(/^\d+:\d+: YAML syntax/);
    const unknownRule = await post(`apiVersion: zt.hanzo.ai/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n  cases:\n    - request: {roles: [sre], service: redis, action: read}\n      expect: {decision: ALLOW, rule: nope/rule-1}\n`);
    expect(unknownRule.status).toBe(422);
    expect(unknownRule.body.error.errors[0]).toContain('expect.rule: no rule "nope/rule-1"');
    const onlyPolicy = await post(readFileSync("policies/production-access.yaml", "utf8"));
    expect(onlyPolicy.status).toBe(400);
    expect(onlyPolicy.body.error.code).toBe("no_tests");
    expect((await post("  \n")).status).toBe(400);
  });
});
