// fast-check generators for policy sets and requests over a small alphabet, so generated
// requests often hit generated rules (and their wildcards, DENY overrides and port ranges).
import fc from "fast-check";
import { stringify } from "yaml";
import { buildPolicySet } from "../../compiler/load.js";
import type { OperatorRequest, PolicySet, ServiceRequest } from "../../compiler/model.js";
import { parsePolicyText } from "../../compiler/parse.js";

const TRUST_DOMAINS = ["a.org", "b.org"];
const SEGMENTS = ["x", "y", "z"];
const ROLES = ["r1", "r2", "r3"];
const SERVICES = ["s1", "s2", "s3"];
const ACTIONS = ["read", "write", "logs"];

const segment = fc.constantFrom(...SEGMENTS);
const trustDomain = fc.constantFrom(...TRUST_DOMAINS);

/** A SPIFFE pattern: literal segments, `*`, or a trailing `**`. */
export const spiffePattern: fc.Arbitrary<string> = fc
  .tuple(trustDomain, fc.array(fc.oneof({ weight: 5, arbitrary: segment }, { weight: 2, arbitrary: fc.constant("*") }), { minLength: 0, maxLength: 3 }), fc.boolean())
  .map(([td, segs, glob]) => `spiffe://${td}${segs.map((s) => "/" + s).join("")}${glob ? "/**" : ""}`);

/** A concrete SPIFFE ID, sometimes invalid. */
export const spiffeId: fc.Arbitrary<string> = fc.oneof(
  { weight: 20, arbitrary: fc.tuple(trustDomain, fc.array(segment, { minLength: 0, maxLength: 4 })).map(([td, segs]) => `spiffe://${td}${segs.map((s) => "/" + s).join("")}`) },
  { weight: 1, arbitrary: fc.constantFrom("spiffe://a.org/x/", "spiffe://A.org/x", "http://a.org/x", "spiffe://a.org//x", "spiffe://a.org/./x", "spiffe://a.org/x/..", "spiffe://", "spiffe://a.org/x%20", "spiffe://a.org/é", "") },
);

const port = fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 1, max: 12 }) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 65535 }) }, { weight: 1, arbitrary: fc.constantFrom(0, -1, 65536, 1.5) });
const portSpec = fc.oneof(
  fc.integer({ min: 1, max: 12 }),
  fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 6 })).map(([lo, w]) => `${lo}-${lo + w}`),
);

const serviceRule = fc.record(
  {
    action: fc.constantFrom("ALLOW", "ALLOW", "ALLOW", "DENY"),
    from: spiffePattern,
    to: fc.array(fc.record({ spiffe: spiffePattern, ports: fc.option(fc.array(portSpec, { minLength: 1, maxLength: 3 }), { nil: undefined }) }), { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: ["from", "to"] },
);

const operatorRule = fc.record({
  role: fc.constantFrom(...ROLES),
  targets: fc.array(
    fc.record({ service: fc.constantFrom(...SERVICES, "*"), actions: fc.uniqueArray(fc.constantFrom(...ACTIONS, "*"), { minLength: 1, maxLength: 3 }) }),
    { minLength: 1, maxLength: 3 },
  ),
  conditions: fc.record({ requireMFA: fc.boolean(), requireIncident: fc.boolean() }),
});

function cleanTarget(t: { spiffe: string; ports?: Array<number | string> | undefined }): object {
  return t.ports === undefined ? { spiffe: t.spiffe } : { spiffe: t.spiffe, ports: t.ports };
}

/** YAML texts of 1-3 policies (service and operator), named uniquely. */
export const policyTexts: fc.Arbitrary<string[]> = fc
  .tuple(
    fc.array(fc.array(serviceRule, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 2 }),
    fc.array(fc.array(operatorRule, { minLength: 1, maxLength: 4 }), { minLength: 0, maxLength: 2 }),
    fc.array(fc.record({ destination: spiffePattern, mode: fc.constantFrom("observe", "enforce") }), { maxLength: 2 }),
  )
  .map(([svc, ops, rollout]) => {
    const texts: string[] = [];
    svc.forEach((rules, i) => {
      const spec: Record<string, unknown> = {
        rules: rules.map((r) => ({ ...(r.action ? { action: r.action } : {}), from: { spiffe: r.from }, to: r.to.map(cleanTarget) })),
        defaultAction: "DENY",
      };
      if (i === 0 && rollout.length > 0) spec.rollout = rollout;
      texts.push(stringify({ apiVersion: "zt.hanzo.ai/v1", kind: "ServiceAccessPolicy", metadata: { name: `svc-${String.fromCharCode(122 - i)}` }, spec }));
    });
    ops.forEach((rules, i) => {
      texts.push(
        stringify({
          apiVersion: "zt.hanzo.ai/v1",
          kind: "OperatorAccessPolicy",
          metadata: { name: `ops-${i}` },
          spec: { rules: rules.map((r) => ({ role: r.role, targets: r.targets, conditions: [{ requireMFA: r.conditions.requireMFA }, { requireIncident: r.conditions.requireIncident }] })) },
        }),
      );
    });
    return texts;
  });

export function setFromTexts(texts: readonly string[]): PolicySet {
  const policies = texts.flatMap((t, i) => {
    const r = parsePolicyText(t, `gen-${i}.yaml`);
    if (!r.ok) throw new Error(`generated policy does not parse: ${JSON.stringify(r.errors)}\n${t}`);
    return r.policies;
  });
  const s = buildPolicySet(policies);
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  return s.set;
}

export const serviceRequest: fc.Arbitrary<ServiceRequest> = fc.record({ source: spiffeId, destination: spiffeId, port });

export const operatorRequest: fc.Arbitrary<OperatorRequest> = fc.record({
  roles: fc.uniqueArray(fc.constantFrom(...ROLES, "r9"), { maxLength: 3 }),
  mfa: fc.boolean(),
  incidentActive: fc.boolean(),
  service: fc.constantFrom(...SERVICES, "s9"),
  action: fc.constantFrom(...ACTIONS, "delete"),
});
