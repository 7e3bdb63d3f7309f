// Generated audit records with awkward values in every text field (quotes, backslashes,
// braces, NULL-looking text, any Unicode), operator and service records alike: what the
// insert paths (text arrays, binary COPY) must store exactly as appended.
import fc from "fast-check";
import type { AuditRecord } from "../../host/audit/record.js";
import { operatorRecord, serviceRecord } from "./helpers.js";

export interface AwkwardRecordOptions {
  /** Values that must come up often beside the random text. */
  nasty: readonly string[];
  /** Timestamps from this many days ago to now (each day needs its partition). */
  days: number;
  latency: fc.Arbitrary<number>;
  /** Vary the destination port too. */
  port?: boolean;
}

export function awkwardRecords(o: AwkwardRecordOptions): fc.Arbitrary<AuditRecord> {
  const text = fc.string({ unit: "binary", minLength: 1, maxLength: 40 }).filter((s) => !s.includes("\u0000"));
  const anyText = fc.oneof(text, fc.constantFrom(...o.nasty));
  const now = Date.now();
  return fc
    .record({
      operator: fc.boolean(),
      subject: anyText,
      roles: fc.array(anyText, { maxLength: 4 }),
      incident: fc.option(anyText, { nil: null }),
      pod: fc.option(anyText, { nil: null }),
      node: fc.option(anyText, { nil: null }),
      policy: fc.option(anyText, { nil: null }),
      reason: anyText,
      origin: anyText,
      caller: fc.option(anyText, { nil: null }),
      service: anyText,
      action: anyText,
      ms: fc.integer({ min: now - o.days * 86_400_000, max: now }),
      latency: o.latency,
      port: fc.integer({ min: 1, max: 65535 }),
      mfa: fc.boolean(),
    })
    .map((g) => {
      const base = g.operator ? operatorRecord(g.subject, g.service, g.action) : serviceRecord();
      return {
        ...base,
        timestamp: new Date(g.ms).toISOString(),
        source: base.source && { ...base.source, pod: g.pod, node: g.node },
        destination: base.destination && (o.port ? { ...base.destination, port: g.port } : base.destination),
        operator: base.operator && { subject: g.subject, roles: g.roles, mfa: g.mfa, incident: g.incident },
        policy_matched: g.policy,
        latency_us: g.latency,
        reason: g.reason,
        origin: g.origin,
        caller: g.caller,
      };
    });
}
