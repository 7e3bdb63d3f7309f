// GET /v1/audit's prefix filters served by partial indexes of rare rows (a reason prefix, a
// policy's denies) keep generic plans per time slice (query.ts rarePrefixSlices). Whatever the
// plan, the pages must be exactly the reference's: generated records spread over a year of day
// partitions (so a page fills in the late slices too), each query paged to the end and compared
// with the same filter applied in JavaScript, newest first.
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import fc from "fast-check";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { decodeCursor, parseAuditQuery, queryAudit, rarePrefixSlices } from "../../host/audit/query.js";
import type { AuditRecord } from "../../host/audit/record.js";
import { ensurePartition } from "../../host/audit/insert.js";
import { serviceRecord, storeRecords, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;
let engine: Sql;
const stored: AuditRecord[] = [];

beforeAll(async () => {
  dir = await tempDataDir("rare-prefix");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  engine = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
  // Every day's partition first: a partition created later makes each connection plan its
  // generic plans anew (correct, only slow).
  for (let d = 0; d <= 362; d++) await ensurePartition(engine, new Date(Date.now() - d * DAY).toISOString().slice(0, 10));
});

afterAll(async () => {
  await engine?.end();
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

const DAY = 24 * 3600_000;
const REASONS = ["allowed_by_rule", "default_deny", "denied_by_rule", "condition_failed:requireMFA", "condition_failed:time", "condition_faile"] as const;
const POLICIES = ["iam-access/a-to-b", "iam-access/c-to-d", "iam-accessx/e", "llm-access/f", null] as const;

const recordArb = fc.record({
  daysAgo: fc.oneof(fc.double({ min: 0, max: 360, noNaN: true }), fc.double({ min: 0, max: 2, noNaN: true })),
  reason: fc.constantFrom(...REASONS),
  policy: fc.constantFrom(...POLICIES),
  deny: fc.boolean(),
});

/** Every page of a query, followed by its cursors: the decision ids in order. */
async function pages(params: Record<string, string>, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (;;) {
    const p: Record<string, string[]> = { limit: [String(limit)] };
    for (const [k, v] of Object.entries(params)) p[k] = [v];
    if (cursor) p.cursor = [cursor];
    const q = parseAuditQuery(p);
    if (!q.ok) throw new Error(JSON.stringify(q.error));
    const page = await queryAudit(audit.query, q.value);
    ids.push(...page.records.map((r) => r.decision_id));
    if (!page.next_cursor) return ids;
    expect(decodeCursor(page.next_cursor)).not.toBeNull();
    cursor = page.next_cursor;
  }
}

function reference(match: (r: AuditRecord) => boolean): string[] {
  return stored
    .filter(match)
    .sort((a, b) => (a.timestamp === b.timestamp ? (a.decision_id < b.decision_id ? 1 : -1) : a.timestamp < b.timestamp ? 1 : -1))
    .map((r) => r.decision_id);
}

describe("prefix filters on generic slice plans", () => {
  it("page through exactly what the filter applied to every record gives", async () => {
    const queries: Array<[Record<string, string>, (r: AuditRecord) => boolean]> = [
      [{ reason: "condition_failed:*" }, (r) => r.reason.startsWith("condition_failed:")],
      [{ reason: "condition_f*" }, (r) => r.reason.startsWith("condition_f")],
      [{ reason: "denied*" }, (r) => r.reason.startsWith("denied")],
      [{ policy: "iam-access", decision: "DENY" }, (r) => r.decision === "DENY" && (r.policy_matched ?? "").startsWith("iam-access/")],
      [{ policy: "iam-access", decision: "DENY", reason: "condition_failed:*" }, (r) => r.decision === "DENY" && (r.policy_matched ?? "").startsWith("iam-access/") && r.reason.startsWith("condition_failed:")],
    ];
    for (const [params] of queries) {
      const q = parseAuditQuery(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [v]])));
      expect(q.ok && rarePrefixSlices(q.value), JSON.stringify(params)).toBe(true);
    }
    await fc.assert(
      fc.asyncProperty(fc.array(recordArb, { minLength: 1, maxLength: 60 }), fc.integer({ min: 2, max: 9 }), async (gen, limit) => {
        const now = Date.now();
        const batch: AuditRecord[] = [];
        for (const g of gen) {
          const r = serviceRecord({
            timestamp: new Date(Math.floor(now - g.daysAgo * DAY)).toISOString(),
            decision: g.deny ? "DENY" : "ALLOW",
            policy: g.policy,
            reason: g.reason,
          });
          r.decision_id = randomUUID();
          batch.push(r);
        }
        await storeRecords(engine, batch);
        stored.push(...batch);
        for (const [params, match] of queries) expect(await pages(params, limit), JSON.stringify(params)).toEqual(reference(match));
      }),
      { numRuns: 6 },
    );
  }, 300_000);
});
