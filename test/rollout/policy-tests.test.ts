// zt test: PolicyTest documents beside the policies, run against the compiled module, with
// PASS/FAIL, a summary, rule coverage, JSON output and exit codes from a real process.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempTree, zt } from "./cli.js";

const POLICY = readFileSync("policies/hanzo-core-policy.yaml", "utf8");
const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";

function testDoc(cases: string): string {
  return `apiVersion: zt.hanzo.ai/v1
kind: PolicyTest
metadata:
  name: core
spec:
  cases:
${cases}`;
}

const PASSING = `    - name: gw-db
      request: {source: "${H}gateway", destination: "${H}postgres", port: 5432}
      expect: {decision: ALLOW, rule: hanzo-core-policy/rule-2, reason: allowed_by_rule}
    - request: {source: "${H}chat", destination: "${H}postgres", port: 5432}
      expect: {decision: DENY, rule: null}
`;

describe("zt test", () => {
  it("the shipped tests pass and exercise every shipped rule", () => {
    const r = zt(["test", "policies"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("PASS: 13/13\n");
    expect(r.out).toContain("COVERAGE: 6/6 rules decided at least one case (100%)");
  });

  it("passing cases: only the summary and coverage, rules no case exercised named with file:line:col", () => {
    const dir = tempTree({ "core.yaml": POLICY, "core.test.yaml": testDoc(PASSING) });
    const r = zt(["test", dir]);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain(": PASS");
    expect(r.out).toContain("PASS: 2/2\n");
    expect(r.out).not.toContain("FAIL");
    expect(r.out).toContain("COVERAGE: 1/3 rules decided at least one case (33.3%)");
    expect(r.out).toContain(`  not exercised: hanzo-core-policy/rule-1 (${join(dir, "core.yaml")}:9:7)`);
    expect(r.out).toContain(`  not exercised: hanzo-core-policy/rule-3 (${join(dir, "core.yaml")}:27:7)`);
    const v = zt(["test", "-v", dir]);
    expect(v.out).toContain(`${join(dir, "core.test.yaml")}:7:7: core/gw-db: PASS`);
    expect(v.out).toContain(`${join(dir, "core.test.yaml")}:10:7: core/case-2: PASS`);
  });

  it("a failing case: FAIL with what was expected and what the module decided, exit 1", () => {
    const failing = `${PASSING}    - name: chat-to-db
      request: {source: "${H}chat", destination: "${H}postgres", port: 5432}
      expect: {decision: ALLOW}
    - name: wrong-rule
      request: {source: "${H}iam", destination: "${H}redis", port: 6379}
      expect: {decision: ALLOW, rule: hanzo-core-policy/rule-2}
`;
    const dir = tempTree({ "core.yaml": POLICY, "t/core.test.yaml": testDoc(failing) });
    const r = zt(["test", dir]);
    expect(r.code).toBe(1);
    const file = join(dir, "t/core.test.yaml");
    expect(r.out).toContain(`${file}:12:7: core/chat-to-db: FAIL\n  request:  ${H}chat -> ${H}postgres:5432\n  expected: ALLOW\n  got:      DENY (rule none, reason default_deny)\n`);
    expect(r.out).toContain(`${file}:15:7: core/wrong-rule: FAIL\n`);
    expect(r.out).toContain("  expected: ALLOW (rule hanzo-core-policy/rule-2)\n  got:      ALLOW (rule hanzo-core-policy/rule-1, reason allowed_by_rule)\n");
    expect(r.out).toContain("PASS: 2/4\nFAIL: 2/4\n");
  });

  it("--format json: every case, the summary and the coverage", () => {
    const dir = tempTree({ "core.yaml": POLICY, "core.test.yaml": testDoc(PASSING) });
    const r = zt(["test", dir, "--format", "json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.policy_version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(report.summary).toEqual({ total: 2, pass: 2, fail: 0 });
    expect(report.cases[0]).toMatchObject({ id: "core/gw-db", result: "pass", line: 7, col: 7, actual: { decision: "ALLOW", rule: "hanzo-core-policy/rule-2", reason: "allowed_by_rule" }, mismatches: [] });
    expect(report.coverage).toMatchObject({ rules: 3, covered: 1, percent: 33.3 });
    expect(report.coverage.uncovered.map((u: { rule: string }) => u.rule)).toEqual(["hanzo-core-policy/rule-1", "hanzo-core-policy/rule-3"]);
  });

  it("operator requests, with mfa and incident", () => {
    const dir = tempTree({
      "ops.yaml": readFileSync("policies/production-access.yaml", "utf8"),
      "ops.test.yaml": testDoc(`    - request: {roles: [oncall, developer], service: postgres, action: write, mfa: true}
      expect: {decision: DENY, reason: "condition_failed:requireIncident", rule: production-access/rule-3}
    - request: {roles: [oncall], service: postgres, action: write, mfa: true, incident: true}
      expect: {decision: ALLOW}
    - request: {roles: [nobody], service: postgres, action: write}
      expect: {decision: DENY, reason: role_undeclared}
`),
    });
    const r = zt(["test", dir, "--format", "json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).summary).toEqual({ total: 3, pass: 3, fail: 0 });
  });

  it("malformed test files: every problem as file:line:col, from zt test and zt check alike, exit 1", () => {
    const bad = `apiVersion: zt.hanzo.ai/v1
kind: PolicyTest
metadata:
  name: Bad_Name
spec:
  cases:
    - request: {source: "${H}chat", destination: "${H}gateway", port: "4000"}
      expect: {decision: MAYBE}
    - request: {source: "${H}chat", roles: [sre]}
      expect: {decision: ALLOW, reason: because}
    - name: dup
      request: {roles: [sre], service: postgres}
      expect: {decision: DENY, reason: allowed_by_rule, extra: 1}
    - name: dup
      request: {roles: sre, service: postgres, action: read, mfa: "yes"}
      expect: {decision: DENY}
`;
    const dir = tempTree({ "core.yaml": POLICY, "bad.test.yaml": bad });
    const file = join(dir, "bad.test.yaml");
    const want = [
      `${file}:4:9: metadata.name "Bad_Name" is invalid`,
      `${file}:7:131: spec.cases[0].request.port must be an integer, got a string`,
      `${file}:8:26: spec.cases[0].expect.decision must be ALLOW or DENY, got "MAYBE"`,
      `${file}:9:16: spec.cases[1].request: a service request (source, destination, port) or an operator request (roles, service, action, mfa, incident), not both`,
      `${file}:10:41: spec.cases[1].expect.reason "because" is not a reason the module gives`,
      `${file}:12:16: spec.cases[2].request: missing required field "action"`,
      `${file}:13:40: spec.cases[2].expect: reason "allowed_by_rule" never comes with decision DENY`,
      `${file}:13:57: unknown field "extra" in spec.cases[2].expect (allowed: decision, rule, reason)`,
      `${file}:14:13: duplicate case name "dup" (also case 3 of this test)`,
      `${file}:15:24: spec.cases[3].request.roles must be a list, got a string`,
      `${file}:15:67: spec.cases[3].request.mfa must be true or false, got a string`,
    ];
    for (const cmd of ["test", "check"]) {
      const r = zt([cmd, dir]);
      expect(r.code, cmd).toBe(1);
      for (const w of want) expect(r.err, `${cmd}: ${w}`).toContain(w);
      expect(r.err).toContain(`${want.length} errors`);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it("a case naming a rule the policies do not have is an error in the test, not a failure", () => {
    const dir = tempTree({
      "core.yaml": POLICY,
      "t.yaml": testDoc(`    - request: {source: "${H}chat", destination: "${H}gateway", port: 4000}
      expect: {decision: ALLOW, rule: hanzo-core-policy/rule-9}
`),
    });
    const r = zt(["test", dir]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${join(dir, "t.yaml")}:8:39: expect.rule: no rule "hanzo-core-policy/rule-9" in the policies under test`);
  });

  it("no tests, broken policies, usage errors", () => {
    const none = zt(["test", tempTree({ "core.yaml": POLICY })]);
    expect(none.code).toBe(1);
    expect(none.err).toContain("no PolicyTest documents under");
    const broken = tempTree({ "core.yaml": POLICY.replace("ports: [5432]", "ports: [99999]"), "t.yaml": testDoc(PASSING) });
    const b = zt(["test", broken]);
    expect(b.code).toBe(1);
    expect(b.err).toContain("port 99999 is out of range");
    expect(zt(["test"]).code).toBe(2);
    expect(zt(["test", "policies", "--format", "xml"]).code).toBe(2);
    expect(zt(["test", "/nonexistent/zt"]).err).toContain("cannot read: ENOENT");
  });
});
