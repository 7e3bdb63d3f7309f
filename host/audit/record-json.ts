// The engine thread's audit hand-off for one record: validate and normalise it
// (validate.ts) and serialise it for the writer thread, in the canonical form the chain hash
// covers (sorted keys, chain.ts), so the writer thread hashes the text as it came instead of
// writing the record out again. The reference is `canonicalJson(normalizeRecord(r).value)`;
// this module gives the same text (property-tested against it) without building the normalised copy or running the text checks again for the
// strings every record repeats: workload IDs, pods, the rule, reason, version, origin, caller.
// A string counts as known only after a record holding it passed the reference validation in
// that field, so what the fast path accepts the reference accepted before. Anything unusual
// (operator and agent records, a new string, a new timestamp) takes the reference path.
import { canonicalRecord } from "./chain.js";
import { MAX_FUTURE_SKEW_MS, MAX_RECORD_AGE_MS, normalizeRecord, type FieldError } from "./validate.js";
import type { AuditRecord } from "./record.js";

/**
 * `ascii`: the text is known to be ASCII, so the hand-off ring copies it byte for byte
 * instead of encoding UTF-8 (false when unsure: the reference path, or a known string that is not).
 */
export type EncodedRecord = { ok: true; json: string; ascii: boolean } | { ok: false; error: FieldError };

const NON_ASCII = /[\u0080-\uffff]/;

const KNOWN_MAX = 8192;

/** Strings that passed one field's check, each with its JSON literal. Bounded: cleared when full. */
class KnownText {
  private readonly map = new Map<string, string>();
  /** Every string held is ASCII. */
  ascii = true;
  get(s: unknown): string | undefined {
    return typeof s === "string" ? this.map.get(s) : undefined;
  }
  /** `null` when the value is null (nullable fields), the literal when known, else undefined. */
  nullable(s: unknown): string | undefined {
    return s === null ? "null" : this.get(s);
  }
  remember(s: string | null): void {
    if (s === null || this.map.has(s)) return;
    if (this.map.size >= KNOWN_MAX) {
      this.map.clear();
      this.ascii = true;
    }
    if (this.ascii && NON_ASCII.test(s)) this.ascii = false;
    this.map.set(s, JSON.stringify(s));
  }
}

// One set per field kind: the same string may be valid in one field and too long for another.
const spiffeIds = new KnownText();
const podOrNode = new KnownText();
const matched = new KnownText();
const reasons = new KnownText();
const versions = new KnownText();
const origins = new KnownText();
const callers = new KnownText();

// The last timestamp the reference accepted, with its instant and normalised form.
const NONE = Symbol("no timestamp yet");
let lastTimestamp: unknown = NONE;
let lastMs = 0;
let lastNormalised = "";

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * A timestamp already in the normalised form (`Date#toISOString`, UTC, milliseconds), as the
 * engine writes it: a new one every millisecond under load, too often for the reference path.
 * Such a string passes the reference's text and RFC 3339 checks; the bounds are checked after.
 */
function canonicalTimestamp(v: unknown): boolean {
  if (typeof v !== "string" || v.length !== 24) return false;
  const ms = Date.parse(v);
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== v) return false;
  lastTimestamp = v;
  lastMs = ms;
  lastNormalised = v;
  return true;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Enumerable keys of `o`, as `for…in` sees them (own and inherited). */
function keyCount(o: object): number {
  let n = 0;
  for (const _ in o) n++;
  return n;
}

/** The service record's JSON when every part of it is known good, else null (take the reference path). */
function fastService(v: Record<string, unknown>, nowMs: number): string | null {
  if (keyCount(v) !== 14 || v.operator !== null || v.target !== null) return null;
  const decision = v.decision;
  if (decision !== "ALLOW" && decision !== "DENY") return null;
  const src = v.source;
  const dst = v.destination;
  if (!isPlain(src) || !isPlain(dst) || keyCount(src) !== 3 || keyCount(dst) !== 2) return null;
  const srcId = spiffeIds.get(src.spiffe_id);
  const pod = podOrNode.nullable(src.pod);
  const node = podOrNode.nullable(src.node);
  const dstId = spiffeIds.get(dst.spiffe_id);
  const port = dst.port;
  if (srcId === undefined || pod === undefined || node === undefined || dstId === undefined) return null;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  if (v.timestamp !== lastTimestamp && !canonicalTimestamp(v.timestamp)) return null;
  if (lastMs < nowMs - MAX_RECORD_AGE_MS || lastMs > nowMs + MAX_FUTURE_SKEW_MS) return null;
  const policy = matched.nullable(v.policy_matched);
  const reason = reasons.get(v.reason);
  const version = versions.get(v.policy_version);
  const origin = origins.get(v.origin);
  const caller = callers.nullable(v.caller);
  if (policy === undefined || reason === undefined || version === undefined || origin === undefined || caller === undefined) return null;
  const latency = v.latency_us;
  if (typeof latency !== "number" || !Number.isFinite(latency) || latency < 0 || latency > Number.MAX_SAFE_INTEGER) return null;
  const id = v.decision_id;
  if (typeof id !== "string" || !UUID.test(id)) return null;
  const enforced = v.enforced;
  if (typeof enforced !== "boolean") return null;
  // Sorted keys and number formatting as canonicalRecord() writes the normalised record.
  return (
    `{"caller":${caller},"decision":"${decision}","decision_id":"${id.toLowerCase()}","destination":{"port":${port},"spiffe_id":${dstId}},` +
    `"enforced":${enforced},"latency_us":${JSON.stringify(Math.round(latency))},"operator":null,"origin":${origin},"policy_matched":${policy},` +
    `"policy_version":${version},"reason":${reason},"source":{"node":${node},"pod":${pod},"spiffe_id":${srcId}},"target":null,"timestamp":"${lastNormalised}"}`
  );
}

/** Remembers the strings of a record the reference accepted (`raw` as given, `r` normalised). */
function remember(raw: Record<string, unknown>, r: AuditRecord): void {
  if (r.source !== null) {
    spiffeIds.remember(r.source.spiffe_id);
    podOrNode.remember(r.source.pod);
    podOrNode.remember(r.source.node);
  }
  if (r.destination !== null) spiffeIds.remember(r.destination.spiffe_id);
  matched.remember(r.policy_matched);
  reasons.remember(r.reason);
  versions.remember(r.policy_version);
  origins.remember(r.origin);
  callers.remember(r.caller);
  lastTimestamp = raw.timestamp;
  lastMs = Date.parse(r.timestamp);
  lastNormalised = r.timestamp;
}

/** Validates and normalises `v` (validate.ts's rules) and returns its canonical JSON, as the writer thread reads and hashes it. */
export function encodeRecord(v: unknown, nowMs: number = Date.now()): EncodedRecord {
  if (isPlain(v) && v.source !== null && v.operator === null) {
    const json = fastService(v, nowMs);
    // The rest of a fast record (UUID, timestamp, numbers, keys) is ASCII.
    if (json !== null) return { ok: true, json, ascii: spiffeIds.ascii && podOrNode.ascii && matched.ascii && reasons.ascii && versions.ascii && origins.ascii && callers.ascii };
  }
  const r = normalizeRecord(v, "$", nowMs);
  if (!r.ok) return r;
  remember(v as Record<string, unknown>, r.value);
  return { ok: true, json: canonicalRecord(r.value), ascii: false };
}
