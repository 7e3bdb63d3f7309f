// The one interface where the engine (and the sidecars' ingest endpoint) meets the audit
// trail. The engine builds an AuditRecord for every decision, allow and deny, and hands it
// to an AuditSink before it answers the request.

/** The seed's audit JSON shape (HIP-0044 "Audit Trail"), plus ZT's own fields. */
export interface AuditRecord {
  /** RFC 3339 UTC with milliseconds, e.g. "2026-02-23T14:30:00.000Z". */
  timestamp: string;
  decision: "ALLOW" | "DENY";
  /** Service requests: the caller. Null for operator requests. */
  source: { spiffe_id: string; pod: string | null; node: string | null } | null;
  /** Service requests: the callee. Null for operator requests. */
  destination: { spiffe_id: string; port: number } | null;
  /** Operator requests (BeyondCorp proxy): who asked. Null for service requests. */
  operator: { subject: string; roles: string[]; mfa: boolean; incident: string | null } | null;
  /** Operator requests: what they asked for. Null for service requests. */
  target: { service: string; action: string } | null;
  /** `<policy>/<rule>` or null when no rule decided (default deny, undeclared source...). */
  policy_matched: string | null;
  latency_us: number;
  /** Unique id of this decision (UUID v7 or v4). */
  decision_id: string;
  /** False in observe mode: the decision was computed and logged, not enforced. */
  enforced: boolean;
  /** Machine-readable reason code, e.g. "allowed_by_rule", "default_deny". */
  reason: string;
  /** `sha256:<hex>` of the module that decided. */
  policy_version: string;
  /** Who produced the decision: the engine itself or a sidecar filter (by its node/plugin name). */
  origin: string;
  /** How the caller of the engine was authenticated (mTLS SPIFFE ID, admin token, JWT subject), if known. */
  caller: string | null;
}

/** Thrown by AuditSink.append when the record cannot be made durable; the engine fails closed. */
export class AuditUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuditUnavailableError";
  }
}

export interface AuditSinkStatus {
  /** True when append() will accept records right now. */
  accepting: boolean;
  /** Records accepted but not yet in PostgreSQL (in memory or in the spool). */
  queued: number;
  /** Records lost since start (only when even the spool failed); stays 0 unless forced. */
  dropped: number;
  /** Human-readable state, e.g. "postgres ok", "spooling: connection refused". */
  detail: string;
}

export interface AuditSink {
  /**
   * Accept a record. Synchronous and cheap: never waits on PostgreSQL. Throws
   * AuditUnavailableError when the record cannot be accepted (memory bound reached and the
   * spool failing); the caller then denies the request (fail closed) by default.
   */
  append(record: AuditRecord): void;
  /**
   * Backpressure, checked before a request is evaluated: null when `n` more records fit in
   * memory now; otherwise a promise that resolves once they fit, or after `timeoutMs` (then
   * append() refuses as usual and the engine fails closed). A sink without a memory bound
   * of its own need not implement it.
   */
  admit?(n: number, timeoutMs: number): Promise<void> | null;
  status(): AuditSinkStatus;
  /** Resolves when every record appended so far is in PostgreSQL or fsynced to the spool. */
  flush(): Promise<void>;
  /** Flush and release resources (SIGTERM path). */
  close(): Promise<void>;
}

/**
 * Wire format of `POST /v1/audit/ingest` (sidecar filters ship their decisions here):
 * `{"records": AuditRecord[]}`; `origin` names the sidecar. Authenticated like the other
 * admin endpoints (Bearer token) or by a sidecar token, see docs/audit.md.
 */
export interface IngestBody {
  records: AuditRecord[];
}
