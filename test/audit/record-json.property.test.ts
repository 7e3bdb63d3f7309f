// The audit hand-off's encoder (record-json.ts) against its reference: for any sequence of
// records, valid or not, encodeRecord gives exactly canonicalJson(normalizeRecord(r).value),
// or the same refusal. Values come from small pools so that strings repeat and the encoder's
// caches of known-good strings and timestamps are hit, missed and reused across fields.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../host/audit/chain.js";
import { encodeRecord } from "../../host/audit/record-json.js";
import { normalizeRecord } from "../../host/audit/validate.js";

const NOW = Date.parse("2026-03-01T12:00:00.000Z");
const H = "spiffe://hanzo.ai/do-sfo3/hanzo/";

/** Mostly values the reference accepts, sometimes one it refuses. */
function mostly<T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 30, arbitrary: good }, { weight: 1, arbitrary: bad });
}
const ids = mostly(fc.constantFrom(H + "gateway", H + "llm", H + "iam"), fc.constantFrom("spiffe://Hanzo.ai/x", "not-a-spiffe-id", "", 7, null, undefined, H + "a\u0000b", H + "x".repeat(2100)));
const texts = mostly(fc.constantFrom<string | null>("gateway-7f9b-x2k4", "node-1", "a", 'has "quote" and \\ and \n', "lock \u{1F510}", "x".repeat(253), H + "gateway", null), fc.constantFrom("", "a\uD800b", "a\u0000b", "x".repeat(254), undefined, 3));
const names = mostly(fc.constantFrom<string | null>("allowed_by_rule", "default_deny", "gateway-access/gateway-to-llm", "sha256:" + "a".repeat(64), "engine", H + "gateway", "x".repeat(256), "é", null), fc.constantFrom("x".repeat(257), "x".repeat(600), "", "a\uDC00", 1));
// Canonical timestamps (as the engine writes them) within and beyond the bounds, and other forms.
const canonical = fc.integer({ min: -8 * 24 * 3600_000, max: 2 * 3600_000 }).map((d) => new Date(NOW + d).toISOString());
const timestamps = mostly(
  fc.oneof(canonical, fc.constantFrom("2026-03-01T11:59:59.123Z", "2026-03-01T13:30:00+02:00", "2026-03-01T11:00:00.5Z", "2026-03-01T11:59:59.123z", "2026-03-01T11:59:59.1234Z")),
  fc.constantFrom(
    "2026-02-20T00:00:00.000Z", // more than 7 days old
    "2026-03-01T14:00:00.000Z", // two hours ahead
    "yesterday",
    "",
    null,
    42,
  ),
);
const uuids = mostly(fc.oneof(fc.uuid(), fc.uuid().map((u) => u.toUpperCase())), fc.constantFrom("not-a-uuid", "", null, 1, "0192f1e2-aaaa-7bbb-8ccc-0123456789abc"));
const latencies = mostly(fc.oneof(fc.integer({ min: 0, max: 100_000 }), fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constantFrom(-0, Number.MAX_SAFE_INTEGER)), fc.constantFrom(-1, NaN, Infinity, Number.MAX_SAFE_INTEGER + 2, "12", null));
const ports = mostly(fc.integer({ min: 1, max: 65535 }), fc.constantFrom(0, 65536, 1.5, "80", null));

const source = fc.oneof(
  { weight: 30, arbitrary: fc.record({ spiffe_id: ids, pod: texts, node: texts }) },
  { weight: 1, arbitrary: fc.record({ spiffe_id: ids, pod: texts }) },
  { weight: 1, arbitrary: fc.record({ spiffe_id: ids, pod: texts, node: texts, extra: texts }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, [], "x") },
);
const destination = fc.oneof(
  { weight: 30, arbitrary: fc.record({ spiffe_id: ids, port: ports }) },
  { weight: 1, arbitrary: fc.record({ spiffe_id: ids, port: ports, pod: texts }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, []) },
);
const operator = fc.oneof(
  { weight: 10, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.record({ subject: texts, roles: fc.array(texts, { maxLength: 3 }), mfa: fc.boolean(), incident: texts }) },
);
const target = fc.oneof({ weight: 10, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.record({ service: texts, action: texts }) });

const record = fc
  .record({
    timestamp: timestamps,
    decision: mostly(fc.constantFrom("ALLOW", "DENY"), fc.constant("MAYBE")),
    source,
    destination,
    operator,
    target,
    policy_matched: names,
    latency_us: latencies,
    decision_id: uuids,
    enforced: mostly(fc.boolean(), fc.constant("yes")),
    reason: names,
    policy_version: names,
    origin: names,
    caller: names,
  })
  .chain((r) =>
    // Sometimes a field missing or one too many.
    fc.oneof(
      { weight: 20, arbitrary: fc.constant<Record<string, unknown>>(r) },
      { weight: 1, arbitrary: fc.constant<Record<string, unknown>>({ ...r, extra: 1 }) },
      { weight: 1, arbitrary: fc.constant(Object.fromEntries(Object.entries(r).filter(([k]) => k !== "caller"))) },
    ),
  );

function reference(v: unknown): unknown {
  const r = normalizeRecord(v, "$", NOW);
  return r.ok ? { ok: true, json: canonicalJson(r.value) } : r;
}

/** The encoder's answer as the reference gives it; its `ascii` flag may only be true for ASCII text (the ring copies such text byte for byte). */
function checked(out: ReturnType<typeof encodeRecord>): unknown {
  if (!out.ok) return out;
  if (out.ascii) expect(out.json).not.toMatch(/[\u0080-\uffff]/);
  return { ok: true, json: out.json };
}

describe("encodeRecord (audit hand-off)", () => {
  it("equals canonicalJson(normalizeRecord(record).value), or the same refusal, over any sequence of records", () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 40 }), (records) => {
        for (const r of records) expect(checked(encodeRecord(r, NOW))).toEqual(reference(r));
      }),
      { numRuns: 600 },
    );
  });

  it("takes the fast path for a repeated service record and still normalises the UUID, the timestamp and the latency", () => {
    const base = {
      timestamp: "2026-03-01T13:30:00+02:00",
      decision: "ALLOW",
      source: { spiffe_id: H + "gateway", pod: "p", node: null },
      destination: { spiffe_id: H + "llm", port: 8080 },
      operator: null,
      target: null,
      policy_matched: "a/b",
      latency_us: 1.6,
      decision_id: "0192F1E2-AAAA-7BBB-8CCC-0123456789AB",
      enforced: true,
      reason: "allowed_by_rule",
      policy_version: "sha256:0",
      origin: "engine",
      caller: null,
    };
    for (let i = 0; i < 3; i++) {
      const r = { ...base, decision_id: base.decision_id.slice(0, -1) + i };
      const out = encodeRecord(r, NOW);
      expect(checked(out)).toEqual(reference(r));
      expect(out.ok && JSON.parse(out.json)).toMatchObject({ timestamp: "2026-03-01T11:30:00.000Z", latency_us: 2, decision_id: "0192f1e2-aaaa-7bbb-8ccc-0123456789a" + i });
    }
    // A known record whose timestamp has since aged past the bound is refused like the reference refuses it.
    const later = NOW + 8 * 24 * 3600_000;
    expect(encodeRecord(base, later)).toEqual(normalizeRecord(base, "$", later));
  });
});
