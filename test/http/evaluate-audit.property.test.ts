// Every request POST /v1/evaluate accepts yields an audit record the audit trail accepts:
// generated service and operator requests with arbitrary text (empty strings, NUL, lone
// surrogates, long strings, any Unicode) go through the real engine over HTTP, into a sink
// that runs the audit trail's own validation (normalizeRecord). A request is either refused
// with a 400 naming a path, or answered with a decision whose record validates; never a
// DENY audit_unavailable because the record was refused after the fact.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord, AuditSink } from "../../host/audit/record.js";
import { normalizeRecord } from "../../host/audit/validate.js";
import { call, H, startTestEngine, type TestEngine } from "./harness.js";

/** Validates like the audit trail, keeps what it refused. */
class ValidatingSink implements AuditSink {
  accepted = 0;
  refused: Array<{ record: AuditRecord; error: string }> = [];
  append(record: AuditRecord): void {
    const v = normalizeRecord(record);
    if (v.ok) this.accepted++;
    else this.refused.push({ record, error: `${v.error.path}: ${v.error.message}` });
  }
  status() {
    return { accepting: true, queued: 0, dropped: 0, detail: "validating test sink" };
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

const sink = new ValidatingSink();
let e: TestEngine;

beforeAll(async () => {
  e = await startTestEngine({ audit: () => ({ sink, close: async () => undefined }) });
});
afterAll(async () => {
  await e?.dispose();
});

// Any UTF-16 code unit, lone surrogates and NUL included, plus plain names.
const unit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const anyText = fc.oneof(fc.string({ unit, maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 40 }), fc.string({ maxLength: 300 }), fc.constantFrom("", "worker-3", "gateway-7f8b9c6d4-x2k9p"));
const maybeText = fc.oneof(fc.constant(undefined), fc.constant(null), anyText);
const workload = fc.constantFrom("gateway", "postgres", "chat", "iam", "redis");

const serviceRequest = fc.record({ src: workload, dst: workload, port: fc.constantFrom(5432, 6379, 4000, 8001), pod: maybeText, node: maybeText }).map(({ src, dst, port, pod, node }) => {
  const source: Record<string, unknown> = { spiffe_id: H + src };
  if (pod !== undefined) source.pod = pod;
  if (node !== undefined) source.node = node;
  return { source, destination: { spiffe_id: H + dst, port } };
});

const operatorRequest = fc
  .record({ subject: anyText, roles: fc.array(fc.oneof(anyText, fc.constantFrom("sre", "oncall")), { maxLength: 4 }), mfa: fc.boolean(), incident: maybeText, service: fc.oneof(anyText, fc.constantFrom("postgres", "chat")), action: fc.oneof(anyText, fc.constantFrom("read", "restart")) })
  .map(({ subject, roles, mfa, incident, service, action }) => {
    const operator: Record<string, unknown> = { subject, roles, mfa };
    if (incident !== undefined) operator.incident = incident;
    return { operator, target: { service, action } };
  });

describe("POST /v1/evaluate and the audit trail", () => {
  it("an accepted request always yields a record the audit trail accepts; a refused one names its path", async () => {
    let answered = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(serviceRequest, operatorRequest), async (req) => {
        const before = sink.refused.length;
        const r = await call<{ decision?: string; reason?: string; error?: { path: string } }>(e.url, "POST", "/v1/evaluate", { body: req });
        if (r.status === 400) {
          refused++;
          expect(r.body.error?.path).toMatch(/^\$\.(source|destination|operator|target)\./);
          return;
        }
        answered++;
        expect(r.status).toBe(200);
        expect(r.body.reason).not.toBe("audit_unavailable");
        expect(sink.refused.slice(before)).toEqual([]);
      }),
      { numRuns: 400 },
    );
    // Both outcomes were exercised.
    expect(answered).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(20);
  });
});
