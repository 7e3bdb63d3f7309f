// Strict validation and normalisation of audit records. The same code checks records the
// engine appends and records sidecars POST to /v1/audit/ingest, so every row that reaches
// PostgreSQL has one shape and cannot poison a batch (no NUL bytes, no out-of-range
// integers, no timestamps without a partition).
import { parseSpiffeId } from "../../compiler/spiffe.js";
import type { AuditRecord } from "./record.js";
import { unstorableText } from "./storable-text.js";

export interface FieldError {
  /** JSONPath of the offending value, e.g. `$.records[3].source.spiffe_id`. */
  path: string;
  message: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; error: FieldError };

/** Records from the future beyond this are refused: a sidecar with a broken clock would otherwise create far-future partitions. */
export const MAX_FUTURE_SKEW_MS = 60 * 60 * 1000;
/**
 * Records older than this are refused with a reason (a sidecar that could not ship them for a
 * week): an older record could belong to a day retention has already dropped, and be lost
 * after the engine acknowledged it. The bound also lets verify check a retention claim
 * against the records around the gap (docs/audit.md, "Retention claims").
 */
export const MAX_RECORD_AGE_MS = 7 * 24 * 60 * 60 * 1000;
const MAX_TEXT = 4096;
const MAX_ROLES = 64;

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const RECORD_KEYS = [
  "timestamp",
  "decision",
  "source",
  "destination",
  "operator",
  "target",
  "policy_matched",
  "latency_us",
  "decision_id",
  "enforced",
  "reason",
  "policy_version",
  "origin",
  "caller",
] as const;

class Invalid extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  // Common case first: every field present and nothing else (no per-key search).
  let present = 0;
  for (const k of allowed) if (k in obj) present++;
  if (present === allowed.length && Object.keys(obj).length === present) return;
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new Invalid(`${path}.${k}`, `unknown field "${k}"`);
  }
  for (const k of allowed) {
    if (!(k in obj)) throw new Invalid(`${path}.${k}`, `missing field "${k}" (use null when it does not apply)`);
  }
}

function text(v: unknown, path: string, opts: { nullable?: boolean; max?: number } = {}): string | null {
  if (v === null && opts.nullable) return null;
  if (typeof v !== "string") throw new Invalid(path, opts.nullable ? "must be a string or null" : "must be a string");
  if (v.length === 0) throw new Invalid(path, "must not be empty");
  const max = opts.max ?? MAX_TEXT;
  if (v.length > max) throw new Invalid(path, `must be at most ${max} characters`);
  const problem = unstorableText(v);
  if (problem !== null) throw new Invalid(path, problem);
  return v;
}

function reqText(v: unknown, path: string, max?: number): string {
  return text(v, path, max === undefined ? {} : { max }) as string;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") throw new Invalid(path, "must be true or false");
  return v;
}

// The same few hundred workload IDs appear in every record: remember the valid ones.
const knownSpiffeIds = new Set<string>();
const KNOWN_SPIFFE_MAX = 8192;

function spiffe(v: unknown, path: string): string {
  if (typeof v === "string" && knownSpiffeIds.has(v)) return v;
  const s = reqText(v, path, 2048);
  const parsed = parseSpiffeId(s);
  if (!parsed.ok) throw new Invalid(path, `invalid SPIFFE ID: ${parsed.error}`);
  if (knownSpiffeIds.size >= KNOWN_SPIFFE_MAX) knownSpiffeIds.clear();
  knownSpiffeIds.add(s);
  return s;
}

// Under load many decisions share their millisecond: the last timestamp parsed is reused.
let lastTimestamp = "";
let lastMs = 0;
let lastNormalised = "";

function timestamp(v: unknown, path: string, nowMs: number): string {
  let ms: number;
  let normalised: string;
  if (v === lastTimestamp) {
    ms = lastMs;
    normalised = lastNormalised;
  } else {
    const s = reqText(v, path, 64);
    if (!RFC3339.test(s)) throw new Invalid(path, 'must be an RFC 3339 timestamp, e.g. "2026-02-23T14:30:00.000Z"');
    ms = Date.parse(s);
    if (!Number.isFinite(ms)) throw new Invalid(path, "is not a valid date");
    // One representation (UTC, milliseconds) so the chain hash can be recomputed from the row.
    normalised = new Date(ms).toISOString();
    lastTimestamp = s;
    lastMs = ms;
    lastNormalised = normalised;
  }
  if (ms < nowMs - MAX_RECORD_AGE_MS) throw new Invalid(path, "is more than 7 days old: the audit trail takes a decision within 7 days of it");
  if (ms > nowMs + MAX_FUTURE_SKEW_MS) throw new Invalid(path, "is more than one hour in the future (check the sender's clock)");
  return normalised;
}

function validateRecord(v: unknown, path: string, nowMs: number): AuditRecord {
  if (!isObject(v)) throw new Invalid(path, "must be an object");
  checkKeys(v, RECORD_KEYS, path);

  const decision = v.decision;
  if (decision !== "ALLOW" && decision !== "DENY") throw new Invalid(`${path}.decision`, 'must be "ALLOW" or "DENY"');

  let source: AuditRecord["source"] = null;
  if (v.source !== null) {
    const p = `${path}.source`;
    if (!isObject(v.source)) throw new Invalid(p, "must be an object or null");
    checkKeys(v.source, ["spiffe_id", "pod", "node"], p);
    source = {
      spiffe_id: spiffe(v.source.spiffe_id, `${p}.spiffe_id`),
      pod: text(v.source.pod, `${p}.pod`, { nullable: true, max: 253 }),
      node: text(v.source.node, `${p}.node`, { nullable: true, max: 253 }),
    };
  }

  let destination: AuditRecord["destination"] = null;
  if (v.destination !== null) {
    const p = `${path}.destination`;
    if (!isObject(v.destination)) throw new Invalid(p, "must be an object or null");
    checkKeys(v.destination, ["spiffe_id", "port"], p);
    const port = v.destination.port;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Invalid(`${p}.port`, "must be an integer port 1-65535");
    }
    destination = { spiffe_id: spiffe(v.destination.spiffe_id, `${p}.spiffe_id`), port };
  }

  let operator: AuditRecord["operator"] = null;
  if (v.operator !== null) {
    const p = `${path}.operator`;
    if (!isObject(v.operator)) throw new Invalid(p, "must be an object or null");
    checkKeys(v.operator, ["subject", "roles", "mfa", "incident"], p);
    const roles = v.operator.roles;
    if (!Array.isArray(roles)) throw new Invalid(`${p}.roles`, "must be an array of strings");
    if (roles.length > MAX_ROLES) throw new Invalid(`${p}.roles`, `must have at most ${MAX_ROLES} roles`);
    operator = {
      subject: reqText(v.operator.subject, `${p}.subject`, 512),
      roles: roles.map((r, i) => reqText(r, `${p}.roles[${i}]`, 256)),
      mfa: bool(v.operator.mfa, `${p}.mfa`),
      incident: text(v.operator.incident, `${p}.incident`, { nullable: true, max: 256 }),
    };
  }

  let target: AuditRecord["target"] = null;
  if (v.target !== null) {
    const p = `${path}.target`;
    if (!isObject(v.target)) throw new Invalid(p, "must be an object or null");
    checkKeys(v.target, ["service", "action"], p);
    target = { service: reqText(v.target.service, `${p}.service`, 256), action: reqText(v.target.action, `${p}.action`, 256) };
  }

  // A record describes a service call (source + destination), an operator request
  // (operator + target) or an agent request (destination only: an AI agent holding a JWT has
  // no workload identity; `caller` names it as "...+jwt:<sub>"), never a mix: the graph and
  // the filters rely on it.
  if (source !== null && destination === null) {
    throw new Invalid(`${path}.destination`, "source and destination are both set (service request) or both null");
  }
  if ((operator === null) !== (target === null)) {
    throw new Invalid(operator === null ? `${path}.operator` : `${path}.target`, "operator and target are both set (operator request) or both null");
  }
  const agent = source === null && destination !== null;
  if (operator !== null ? destination !== null : !agent && source === null) {
    throw new Invalid(`${path}.source`, "a record is either a service request (source, destination), an operator request (operator, target) or an agent request (destination only)");
  }

  const latency = v.latency_us;
  if (typeof latency !== "number" || !Number.isFinite(latency) || latency < 0 || latency > Number.MAX_SAFE_INTEGER) {
    throw new Invalid(`${path}.latency_us`, "must be a non-negative number of microseconds");
  }
  const decisionId = reqText(v.decision_id, `${path}.decision_id`, 36);
  if (!UUID.test(decisionId)) throw new Invalid(`${path}.decision_id`, "must be a UUID");

  return {
    timestamp: timestamp(v.timestamp, `${path}.timestamp`, nowMs),
    decision,
    source,
    destination,
    operator,
    target,
    policy_matched: text(v.policy_matched, `${path}.policy_matched`, { nullable: true, max: 512 }),
    // Stored as whole microseconds; the engine may measure fractions.
    latency_us: Math.round(latency),
    decision_id: decisionId.toLowerCase(),
    enforced: bool(v.enforced, `${path}.enforced`),
    reason: reqText(v.reason, `${path}.reason`, 256),
    policy_version: reqText(v.policy_version, `${path}.policy_version`, 256),
    origin: reqText(v.origin, `${path}.origin`, 256),
    caller: text(v.caller, `${path}.caller`, { nullable: true, max: 2048 }),
  };
}

/** Validates one record and returns its normalised form (UTC ms timestamp, lowercase UUID, integer latency). */
export function normalizeRecord(v: unknown, path = "$", nowMs: number = Date.now()): Validated<AuditRecord> {
  try {
    return { ok: true, value: validateRecord(v, path, nowMs) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, error: { path: e.path, message: e.message } };
    throw e;
  }
}

export const MAX_INGEST_RECORDS = 5000;

/** `POST /v1/audit/ingest` body: `{"records": AuditRecord[]}`. */
export function validateIngestBody(body: unknown, nowMs: number = Date.now()): Validated<AuditRecord[]> {
  try {
    if (!isObject(body)) throw new Invalid("$", "body must be a JSON object");
    checkKeys(body, ["records"], "$");
    const records = body.records;
    if (!Array.isArray(records)) throw new Invalid("$.records", "must be an array");
    if (records.length === 0) throw new Invalid("$.records", "must not be empty");
    if (records.length > MAX_INGEST_RECORDS) throw new Invalid("$.records", `must have at most ${MAX_INGEST_RECORDS} records per request`);
    const out: AuditRecord[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) out[i] = validateRecord(records[i], `$.records[${i}]`, nowMs);
    return { ok: true, value: out };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, error: { path: e.path, message: e.message } };
    throw e;
  }
}
