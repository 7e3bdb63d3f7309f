// Runs PolicyTest cases against a compiled module (the one that enforces, not the reference
// evaluator) and measures rule coverage: which rules no case saw decide.
import { type Diagnostic, sortDiagnostics } from "../../compiler/diagnostics.js";
import { allRules, REASON_NAMES, type PolicySet, type SourceRef } from "../../compiler/model.js";
import type { CompanionDocument } from "../../compiler/parse.js";
import type { PolicyTest, TestExpectation, TestRequest } from "../../compiler/policy-test/model.js";
import { POLICY_TEST_KIND } from "../../compiler/policy-test/model.js";
import { parsePolicyTest } from "../../compiler/policy-test/parse.js";
import type { PolicyRuntime } from "../engine/runtime.js";

export interface CaseOutcome {
  decision: "ALLOW" | "DENY";
  rule: string | null;
  reason: string;
}

export interface CaseResult {
  id: string;
  file: string;
  line: number;
  col: number;
  result: "pass" | "fail";
  request: TestRequest;
  expected: TestExpectation;
  actual: CaseOutcome;
  /** What differs, e.g. ["decision", "rule"]; empty when it passed. */
  mismatches: string[];
}

export interface UncoveredRule {
  rule: string;
  file: string;
  line: number;
  col: number;
}

export interface TestReport {
  policy_version: string;
  cases: CaseResult[];
  summary: { total: number; pass: number; fail: number };
  coverage: { rules: number; covered: number; percent: number; uncovered: UncoveredRule[] };
}

/** The PolicyTest documents among companions, or every problem (file:line:col) with them. */
export function collectTests(companions: readonly CompanionDocument[], set: PolicySet): { ok: true; tests: PolicyTest[] } | { ok: false; errors: Diagnostic[] } {
  const errors: Diagnostic[] = [];
  const tests: PolicyTest[] = [];
  const names = new Map<string, string>();
  for (const doc of companions) {
    if (doc.kind !== POLICY_TEST_KIND) continue;
    const r = parsePolicyTest(doc);
    if (!r.ok) {
      errors.push(...r.errors);
      continue;
    }
    const other = names.get(r.test.name);
    if (other !== undefined) {
      const at = r.test.cases[0]?.at ?? { file: doc.file, line: 1, col: 1 };
      errors.push({ ...at, message: `duplicate PolicyTest name "${r.test.name}" (also in ${other})` });
      continue;
    }
    names.set(r.test.name, doc.file);
    tests.push(r.test);
  }
  // A case that names a rule the policies do not have is a mistake in the test, not a failure.
  const ruleIds = new Set(allRules(set).map((r) => r.id));
  for (const t of tests) {
    for (const c of t.cases) {
      const rule = c.expect.rule;
      if (typeof rule === "string" && !ruleIds.has(rule)) errors.push({ ...(c.ruleAt ?? c.at), message: `expect.rule: no rule "${rule}" in the policies under test` });
    }
  }
  return errors.length > 0 ? { ok: false, errors: sortDiagnostics(errors) } : { ok: true, tests };
}

function evaluate(runtime: PolicyRuntime, req: TestRequest): CaseOutcome {
  const v = req.kind === "service" ? runtime.evaluateService(req) : runtime.evaluateOperator(req);
  return { decision: v.allow ? "ALLOW" : "DENY", rule: runtime.ruleId(v.rule), reason: REASON_NAMES[v.reason] };
}

function mismatches(expected: TestExpectation, actual: CaseOutcome): string[] {
  const out: string[] = [];
  if (expected.decision !== actual.decision) out.push("decision");
  if (expected.rule !== undefined && expected.rule !== actual.rule) out.push("rule");
  if (expected.reason !== undefined && expected.reason !== actual.reason) out.push("reason");
  return out;
}

function where(at: SourceRef): { file: string; line: number; col: number } {
  return { file: at.file, line: at.line, col: at.col };
}

export function runPolicyTests(runtime: PolicyRuntime, set: PolicySet, tests: readonly PolicyTest[]): TestReport {
  const cases: CaseResult[] = [];
  const decided = new Set<string>();
  for (const t of tests) {
    for (const c of t.cases) {
      const actual = evaluate(runtime, c.request);
      if (actual.rule !== null) decided.add(actual.rule);
      const m = mismatches(c.expect, actual);
      cases.push({ id: c.id, ...where(c.at), result: m.length === 0 ? "pass" : "fail", request: c.request, expected: c.expect, actual, mismatches: m });
    }
  }
  const rules = allRules(set);
  const uncovered = rules.filter((r) => !decided.has(r.id)).map((r) => ({ rule: r.id, ...where(r.at) }));
  const covered = rules.length - uncovered.length;
  const pass = cases.filter((c) => c.result === "pass").length;
  return {
    policy_version: runtime.version,
    cases,
    summary: { total: cases.length, pass, fail: cases.length - pass },
    coverage: { rules: rules.length, covered, percent: rules.length === 0 ? 100 : Math.round((covered / rules.length) * 1000) / 10, uncovered },
  };
}

function describeRequest(r: TestRequest): string {
  if (r.kind === "service") return `${r.source} -> ${r.destination}:${r.port}`;
  const flags = [r.mfa ? "mfa" : "no mfa", r.incidentActive ? "incident active" : "no incident"].join(", ");
  return `roles [${r.roles.join(", ")}] ${r.action} on ${r.service} (${flags})`;
}

function describeOutcome(o: Partial<CaseOutcome> & { decision: string }): string {
  const extra = [o.rule === undefined ? null : `rule ${o.rule ?? "none"}`, o.reason === undefined ? null : `reason ${o.reason}`].filter((x) => x !== null);
  return extra.length > 0 ? `${o.decision} (${extra.join(", ")})` : o.decision;
}

/** The report as text, in the spirit of `opa test`: failures always, passes with verbose. */
export function formatTestReport(report: TestReport, verbose: boolean): string {
  const lines: string[] = [];
  for (const c of report.cases) {
    if (c.result === "pass" && !verbose) continue;
    lines.push(`${c.file}:${c.line}:${c.col}: ${c.id}: ${c.result.toUpperCase()}`);
    if (c.result === "fail") {
      lines.push(`  request:  ${describeRequest(c.request)}`);
      lines.push(`  expected: ${describeOutcome(c.expected)}`);
      lines.push(`  got:      ${describeOutcome(c.actual)}`);
    }
  }
  if (lines.length > 0) lines.push("-".repeat(80));
  const { total, pass, fail } = report.summary;
  lines.push(`PASS: ${pass}/${total}`);
  if (fail > 0) lines.push(`FAIL: ${fail}/${total}`);
  const cov = report.coverage;
  lines.push(`COVERAGE: ${cov.covered}/${cov.rules} rules decided at least one case (${cov.percent}%)`);
  for (const u of cov.uncovered) lines.push(`  not exercised: ${u.rule} (${u.file}:${u.line}:${u.col})`);
  return lines.join("\n") + "\n";
}
