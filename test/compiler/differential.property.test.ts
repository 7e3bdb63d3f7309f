// The Wasm module must decide exactly like the plain reference evaluator, on generated
// policy sets (wildcards, DENY rules, port ranges, operator conditions, rollout) and requests.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { evaluateOperatorReference, evaluateServiceReference } from "../../compiler/reference.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { operatorRequest, policyTexts, serviceRequest, setFromTexts } from "../support/policy-arbitraries.js";

const POLICY_SETS = 1500;
const REQUESTS_PER_SET = 8;

describe("Wasm module vs reference evaluator", () => {
  it(`agrees on ${POLICY_SETS * REQUESTS_PER_SET * 2} generated requests`, async () => {
    let cases = 0;
    let allows = 0;
    await fc.assert(
      fc.asyncProperty(
        policyTexts,
        fc.array(serviceRequest, { minLength: REQUESTS_PER_SET, maxLength: REQUESTS_PER_SET }),
        fc.array(operatorRequest, { minLength: REQUESTS_PER_SET, maxLength: REQUESTS_PER_SET }),
        async (texts, svcReqs, opReqs) => {
          const set = setFromTexts(texts);
          const rt = await PolicyRuntime.load(compilePolicySet(set).wasm);
          for (const req of svcReqs) {
            const want = evaluateServiceReference(set, req);
            expect(rt.evaluateService(req), JSON.stringify(req)).toEqual(want);
            if (want.allow) allows++;
            cases++;
          }
          for (const req of opReqs) {
            const want = evaluateOperatorReference(set, req);
            expect(rt.evaluateOperator(req), JSON.stringify(req)).toEqual(want);
            if (want.allow) allows++;
            cases++;
          }
        },
      ),
      { numRuns: POLICY_SETS },
    );
    expect(cases).toBe(POLICY_SETS * REQUESTS_PER_SET * 2);
    // The generators must exercise both outcomes, not just default deny.
    expect(allows).toBeGreaterThan(cases / 20);
  });

  it("batch evaluation equals one-by-one evaluation", async () => {
    await fc.assert(
      fc.asyncProperty(policyTexts, fc.array(serviceRequest, { minLength: 1, maxLength: 50 }), async (texts, reqs) => {
        const set = setFromTexts(texts);
        const rt = await PolicyRuntime.load(compilePolicySet(set).wasm);
        expect(rt.evaluateServiceBatch(reqs)).toEqual(reqs.map((r) => evaluateServiceReference(set, r)));
      }),
      { numRuns: 200 },
    );
  });
});
