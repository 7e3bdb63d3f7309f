// PolicyTest YAML -> validated test cases, every problem as file:line:col (docs/rollout.md
// "Policy tests"). The document sits beside policies; the loader hands it over as a companion.
import { isScalar, type Node } from "yaml";
import type { Diagnostic } from "../diagnostics.js";
import { REASON_NAMES, type SourceRef } from "../model.js";
import { asBool, asMap, asSeq, asString, type Ctx, documentHeader, fields, requireField, typeName } from "../parse.js";
import type { CompanionDocument } from "../parse.js";
import { type PolicyTest, type TestCase, type TestExpectation, type TestRequest } from "./model.js";

const CASE_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,126}[A-Za-z0-9])?$/;
const REASONS: readonly string[] = Object.values(REASON_NAMES);
const SERVICE_FIELDS = ["source", "destination", "port"];
const OPERATOR_FIELDS = ["roles", "service", "action", "mfa", "incident"];

export type PolicyTestOutcome = { ok: true; test: PolicyTest } | { ok: false; errors: Diagnostic[] };

function integer(ctx: Ctx, node: Node | null, what: string): number | null {
  if (node && isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value)) return node.value;
  ctx.err(node, `${what} must be an integer, got ${typeName(node)}`);
  return null;
}

function request(ctx: Ctx, node: Node | null, where: string): TestRequest | null {
  const map = asMap(ctx, node, where);
  if (!map) return null;
  const f = fields(ctx, map, where, [...SERVICE_FIELDS, ...OPERATOR_FIELDS]);
  const isService = SERVICE_FIELDS.some((k) => f.has(k));
  const isOperator = OPERATOR_FIELDS.some((k) => f.has(k));
  if (isService && isOperator) {
    ctx.err(map, `${where}: a service request (${SERVICE_FIELDS.join(", ")}) or an operator request (${OPERATOR_FIELDS.join(", ")}), not both`);
    return null;
  }
  if (!isService && !isOperator) {
    ctx.err(map, `${where}: give a service request (source, destination, port) or an operator request (roles, service, action)`);
    return null;
  }
  if (isService) {
    // Any string: a test may check that a malformed ID is refused (invalid_request).
    const s = requireField(ctx, f, "source", where, map);
    const d = requireField(ctx, f, "destination", where, map);
    const p = requireField(ctx, f, "port", where, map);
    const source = s ? asString(ctx, s, `${where}.source`) : null;
    const destination = d ? asString(ctx, d, `${where}.destination`) : null;
    const port = p ? integer(ctx, p, `${where}.port`) : null;
    if (source === null || destination === null || port === null) return null;
    return { kind: "service", source, destination, port };
  }
  const r = requireField(ctx, f, "roles", where, map);
  const sv = requireField(ctx, f, "service", where, map);
  const ac = requireField(ctx, f, "action", where, map);
  const roles: string[] = [];
  const seq = r ? asSeq(ctx, r, `${where}.roles`) : null;
  seq?.items.forEach((item, i) => {
    const role = asString(ctx, item as Node, `${where}.roles[${i}]`);
    if (role !== null) roles.push(role);
  });
  const service = sv ? asString(ctx, sv, `${where}.service`) : null;
  const action = ac ? asString(ctx, ac, `${where}.action`) : null;
  const flag = (k: "mfa" | "incident"): boolean | null => {
    const e = f.get(k);
    return e ? asBool(ctx, e.value, `${where}.${k}`) : false;
  };
  const mfa = flag("mfa");
  const incidentActive = flag("incident");
  if (!seq || service === null || action === null || mfa === null || incidentActive === null) return null;
  return { kind: "operator", roles, service, action, mfa, incidentActive };
}

function expectation(ctx: Ctx, node: Node | null, where: string): { expect: TestExpectation; ruleAt: SourceRef | null } | null {
  const map = asMap(ctx, node, where);
  if (!map) return null;
  const f = fields(ctx, map, where, ["decision", "rule", "reason"]);
  const before = ctx.errors.length;
  const dn = requireField(ctx, f, "decision", where, map);
  const decision = dn ? asString(ctx, dn, `${where}.decision`) : null;
  if (decision !== null && decision !== "ALLOW" && decision !== "DENY") ctx.err(dn, `${where}.decision must be ALLOW or DENY, got "${decision}"`);
  let rule: string | null | undefined;
  let ruleAt: SourceRef | null = null;
  const re = f.get("rule");
  if (re) {
    ruleAt = ctx.at(re.value, re.key);
    if (re.value === null || (isScalar(re.value) && re.value.value === null)) rule = null;
    else {
      const s = asString(ctx, re.value, `${where}.rule`, re.key);
      if (s !== null && !s.includes("/")) ctx.err(re.value, `${where}.rule "${s}" must be written <policy>/<rule>, e.g. hanzo-core-policy/rule-2`);
      rule = s ?? undefined;
    }
  }
  let reason: string | undefined;
  const rn = f.get("reason");
  if (rn) {
    const s = asString(ctx, rn.value, `${where}.reason`, rn.key);
    if (s !== null && !REASONS.includes(s)) ctx.err(rn.value, `${where}.reason "${s}" is not a reason the module gives (one of: ${REASONS.join(", ")})`);
    reason = s ?? undefined;
  }
  if (decision !== null && reason !== undefined && REASONS.includes(reason) && (reason === "allowed_by_rule") !== (decision === "ALLOW")) {
    ctx.err(rn!.value, `${where}: reason "${reason}" never comes with decision ${decision}`);
  }
  if (ctx.errors.length > before || (decision !== "ALLOW" && decision !== "DENY")) return null;
  const expect: TestExpectation = { decision, ...(rule !== undefined ? { rule } : {}), ...(reason !== undefined ? { reason } : {}) };
  return { expect, ruleAt };
}

/** Parses a PolicyTest companion document; errors only when it is malformed. */
export function parsePolicyTest(doc: CompanionDocument): PolicyTestOutcome {
  const ctx = doc.ctx;
  const start = ctx.errors.length;
  const done = (test: PolicyTest | null): PolicyTestOutcome => {
    const errors = ctx.errors.splice(start);
    return errors.length > 0 || test === null ? { ok: false, errors } : { ok: true, test };
  };
  const map = asMap(ctx, doc.root, "a PolicyTest document");
  if (!map) return done(null);
  const { name, spec } = documentHeader(ctx, map, "the PolicyTest document");
  if (!spec) return done(null);
  const sf = fields(ctx, spec, "spec", ["cases"]);
  const cn = requireField(ctx, sf, "cases", "spec", spec);
  const seq = cn ? asSeq(ctx, cn, "spec.cases") : null;
  if (seq && seq.items.length === 0) ctx.err(seq, "spec.cases must list at least one case");
  const cases: TestCase[] = [];
  const seen = new Map<string, number>();
  seq?.items.forEach((item, i) => {
    const where = `spec.cases[${i}]`;
    const cm = asMap(ctx, item as Node, where);
    if (!cm) return;
    const cf = fields(ctx, cm, where, ["name", "request", "expect"]);
    let caseName = `case-${i + 1}`;
    const ne = cf.get("name");
    if (ne) {
      const s = asString(ctx, ne.value, `${where}.name`, ne.key);
      if (s !== null && !CASE_NAME_RE.test(s)) ctx.err(ne.value, `${where}.name "${s}" is invalid: letters, digits, "-", "_" and "." only, starting and ending with a letter or digit`);
      else if (s !== null) caseName = s;
    }
    const prev = seen.get(caseName);
    if (prev !== undefined) ctx.err(ne?.value ?? cm, `duplicate case name "${caseName}" (also case ${prev + 1} of this test)`);
    else seen.set(caseName, i);
    const rq = requireField(ctx, cf, "request", where, cm);
    const req = rq ? request(ctx, rq, `${where}.request`) : null;
    const ex = requireField(ctx, cf, "expect", where, cm);
    const exp = ex ? expectation(ctx, ex, `${where}.expect`) : null;
    if (req && exp) cases.push({ id: `${name ?? "invalid-name"}/${caseName}`, request: req, expect: exp.expect, at: ctx.at(cm), ruleAt: exp.ruleAt });
  });
  return done(name === null ? null : { name, file: doc.file, cases });
}

/** The companion validator `zt check` runs (compiler/companions.ts). */
export function validatePolicyTest(doc: CompanionDocument): Diagnostic[] {
  const r = parsePolicyTest(doc);
  return r.ok ? [] : r.errors;
}
