// The answer serialisers: what decisionJson/decisionsBody write is exactly JSON.stringify's
// meaning of the decisions, for batches of any size (several chunks) and any text.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Decision } from "../../host/engine/decide.js";
import { decisionJson, decisionsBody } from "../../host/http/decision-json.js";

const decision: fc.Arbitrary<Decision> = fc.record(
  {
    decision: fc.constantFrom("ALLOW" as const, "DENY" as const),
    enforced: fc.boolean(),
    policy_matched: fc.option(fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }), { nil: null }),
    reason: fc.constantFrom("allowed_by_rule", "default_deny", "denied_by_rule"),
    policy_version: fc.constant("sha256:" + "ab".repeat(32)),
    latency_us: fc.nat(100000),
    decision_id: fc.uuid(),
    agent: fc.option(
      fc.record({
        subject: fc.option(fc.string({ unit: "grapheme", maxLength: 12 }), { nil: null }),
        required_scopes: fc.option(fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }), { nil: null }),
        missing_scopes: fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
        detail: fc.string({ unit: "grapheme", maxLength: 30 }),
      }),
      { nil: undefined },
    ),
  },
  { requiredKeys: ["decision", "enforced", "policy_matched", "reason", "policy_version", "latency_us", "decision_id"] },
) as fc.Arbitrary<Decision>;

const plain = (d: Decision): unknown => JSON.parse(JSON.stringify(d));

describe("decision JSON", () => {
  it("one decision: the same value JSON.stringify gives", () => {
    fc.assert(
      fc.property(decision, (d) => {
        expect(JSON.parse(decisionJson(d))).toEqual(plain(d));
      }),
      { numRuns: 300 },
    );
  });

  it("a batch: one buffer holding the JSON array, across chunk boundaries and multi-byte text", () => {
    fc.assert(
      fc.property(fc.array(decision, { minLength: 1, maxLength: 400 }), (ds) => {
        const body = decisionsBody(ds);
        expect(JSON.parse(Buffer.from(body).toString("utf8"))).toEqual(ds.map(plain));
      }),
      { numRuns: 40 },
    );
  });

  it("a batch larger than its first buffer estimate (long multi-byte agent details) grows the buffer", () => {
    const ds: Decision[] = Array.from({ length: 300 }, (_, i) => ({
      decision: "DENY",
      enforced: true,
      policy_matched: null,
      reason: "agent_scope_missing",
      policy_version: "sha256:" + "cd".repeat(32),
      latency_us: i,
      decision_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      agent: { subject: "agent-\u00e9", required_scopes: ["read"], missing_scopes: ["read"], detail: "\u{1F510}".repeat(200) },
    }));
    const body = decisionsBody(ds);
    expect(body.byteLength).toBeGreaterThan(256 * ds.length);
    expect(JSON.parse(Buffer.from(body).toString("utf8"))).toEqual(ds.map(plain));
  });
});
