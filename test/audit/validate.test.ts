// Record validation (engine appends and sidecar ingest share it) and the canonical form the
// chain hash covers.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson, canonicalLink, canonicalRecord, linkHash, linkHashOf, linkPrefix, recordToRow, rowToRecord, genesisHash } from "../../host/audit/chain.js";
import { normalizeRecord, validateIngestBody } from "../../host/audit/validate.js";
import type { AuditRecord } from "../../host/audit/record.js";
import { operatorRecord, serviceRecord } from "./helpers.js";

function errorOf(v: unknown): { path: string; message: string } {
  const r = normalizeRecord(v);
  if (r.ok) throw new Error("expected a validation error");
  return r.error;
}

describe("audit record validation", () => {
  it("accepts the seed's shape and normalises timestamp, UUID case and latency", () => {
    const rec = { ...serviceRecord(), timestamp: "2026-02-23T16:30:00+02:00", decision_id: "0192F1E2-AAAA-7BBB-8CCC-0123456789AB", latency_us: 41.6 };
    const r = normalizeRecord(rec, "$", Date.parse("2026-02-24T00:00:00Z"));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.timestamp).toBe("2026-02-23T14:30:00.000Z");
    expect(r.value.decision_id).toBe("0192f1e2-aaaa-7bbb-8ccc-0123456789ab");
    expect(r.value.latency_us).toBe(42);
  });

  it("accepts operator records", () => {
    expect(normalizeRecord(operatorRecord("alice@hanzo.ai", "postgres", "connect")).ok).toBe(true);
  });

  it("names the JSON path of every kind of error", () => {
    const good = serviceRecord();
    expect(errorOf({ ...good, decision: "MAYBE" })).toEqual({ path: "$.decision", message: 'must be "ALLOW" or "DENY"' });
    expect(errorOf({ ...good, source: { ...good.source, spiffe_id: "spiffe://Hanzo.ai/x" } }).path).toBe("$.source.spiffe_id");
    expect(errorOf({ ...good, destination: { spiffe_id: good.destination!.spiffe_id, port: 70000 } }).path).toBe("$.destination.port");
    expect(errorOf({ ...good, extra: 1 })).toEqual({ path: "$.extra", message: 'unknown field "extra"' });
    const { caller: _c, ...missing } = good;
    expect(errorOf(missing).path).toBe("$.caller");
    expect(errorOf({ ...good, timestamp: "yesterday" }).path).toBe("$.timestamp");
    expect(errorOf({ ...good, timestamp: new Date(Date.now() + 2 * 3600_000).toISOString() }).message).toMatch(/future/);
    expect(errorOf({ ...good, decision_id: "not-a-uuid" }).path).toBe("$.decision_id");
    expect(errorOf({ ...good, reason: "a\u0000b" }).message).toMatch(/NUL/);
    expect(errorOf({ ...good, latency_us: -1 }).path).toBe("$.latency_us");
    expect(errorOf({ ...good, operator: { subject: "x", roles: [], mfa: true, incident: null }, target: { service: "s", action: "a" } }).path).toBe("$.source");
    expect(errorOf({ ...good, destination: null }).path).toBe("$.destination");
    expect(errorOf("x")).toEqual({ path: "$", message: "must be an object" });
  });

  it("refuses text that has no UTF-8 form (an unpaired surrogate would be stored as U+FFFD and break the hash)", () => {
    const good = serviceRecord();
    expect(errorOf({ ...good, reason: "a\uD800b" })).toEqual({ path: "$.reason", message: "must be valid Unicode (unpaired UTF-16 surrogate)" });
    expect(errorOf({ ...good, caller: "\uDC00" }).path).toBe("$.caller");
    expect(errorOf({ ...operatorRecord("alice", "db", "read"), operator: { subject: "alice", roles: ["ok", "x\uDBFF"], mfa: true, incident: null } }).path).toBe("$.operator.roles[1]");
    // Paired surrogates (any astral character) are fine.
    expect(normalizeRecord({ ...good, reason: "lock \u{1F510}" }).ok).toBe(true);
  });

  it("validates the ingest body strictly, with the index of the bad record", () => {
    const body = { records: [serviceRecord(), { ...serviceRecord(), enforced: "yes" }] };
    const r = validateIngestBody(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toEqual({ path: "$.records[1].enforced", message: "must be true or false" });
    expect(validateIngestBody({ records: [] }).ok).toBe(false);
    const extra = validateIngestBody({ records: [serviceRecord()], more: true });
    expect(!extra.ok && extra.error.path).toBe("$.more");
    expect(validateIngestBody([]).ok).toBe(false);
  });
});

const text = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes("\u0000"));
const seg = fc.stringMatching(/^[a-z0-9-]{1,8}$/);
const spiffe = fc.tuple(seg, seg, seg).map(([a, b, c]) => `spiffe://hanzo.ai/${a}/${b}/${c}`);
const recordOf = (text: fc.Arbitrary<string>): fc.Arbitrary<AuditRecord> => fc.oneof(
  fc.record({
    source: fc.record({ spiffe_id: spiffe, pod: fc.option(text, { nil: null }), node: fc.option(text, { nil: null }) }),
    destination: fc.record({ spiffe_id: spiffe, port: fc.integer({ min: 1, max: 65535 }) }),
  }).map((x) => ({ ...x, operator: null, target: null })),
  fc.record({
    operator: fc.record({ subject: text, roles: fc.array(text, { maxLength: 3 }), mfa: fc.boolean(), incident: fc.option(text, { nil: null }) }),
    target: fc.record({ service: text, action: text }),
  }).map((x) => ({ ...x, source: null, destination: null })),
).chain((who) =>
  fc.record({
    timestamp: fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2026, 0, 1) }).map((ms) => new Date(ms).toISOString()),
    decision: fc.constantFrom("ALLOW" as const, "DENY" as const),
    policy_matched: fc.option(text, { nil: null }),
    latency_us: fc.nat(1_000_000),
    decision_id: fc.uuid(),
    enforced: fc.boolean(),
    reason: text,
    policy_version: text,
    origin: text,
    caller: fc.option(text, { nil: null }),
  }).map((rest) => ({ ...rest, ...who })),
);
const arbRecord = recordOf(text);
// Any UTF-16 code units (quotes, backslashes, control characters, lone and paired
// surrogates), mixed with plain text: what the canonical form's fast path must get right.
const anyUnit = fc.oneof(fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), fc.constantFrom('"', "\\", "\n", "\u2028", "😀", "é"));
const anyRecord = recordOf(fc.oneof(text, fc.string({ unit: anyUnit, maxLength: 12 })));

describe("audit chain canonical form", () => {
  it("the hand-written canonical form equals generic sorted-key JSON", () => {
    fc.assert(
      fc.property(anyRecord, fc.string({ maxLength: 20 }), fc.nat(), (r, chain, seq) => {
        expect(canonicalLink(chain, seq, r)).toBe(canonicalJson({ chain_id: chain, seq, record: r }));
      }),
    );
  });

  it("hashing the record's canonical text as handed over (the writer thread's path) gives the same link hash", () => {
    fc.assert(
      fc.property(anyRecord, fc.string({ maxLength: 20 }), fc.nat(), (r, chain, seq) => {
        expect(canonicalRecord(r)).toBe(canonicalJson(r));
        const prev = genesisHash(chain);
        expect(linkHashOf(prev, linkPrefix(chain), seq, canonicalRecord(r))).toBe(linkHash(prev, chain, seq, r));
      }),
    );
  });

  it("a row maps back to the record it was built from, so verify recomputes the same hash", () => {
    fc.assert(
      fc.property(arbRecord, (r) => {
        const row = recordToRow(r, "w/run", 7, genesisHash("w/run"));
        const back = rowToRecord({ ...row, ts: new Date(row.ts) });
        expect(back).toEqual(r);
        expect(linkHash(row.prev_hash, "w/run", 7, back)).toBe(row.hash);
      }),
    );
  });
});
