// Tamper evidence: every writer run keeps one hash chain. A record's hash covers its chain
// id, its sequence number, the previous record's hash and the canonical JSON of the
// record, so editing, deleting or reordering a row breaks the chain `zt audit verify`
// walks. The hash is recomputed from the table's columns, so the row format below and
// rowToRecord() are the single definition of what is hashed.
import { hash as sha } from "node:crypto";
import type { AuditRecord } from "./record.js";

/** One row of zt_audit.decisions, as inserted (JSON object per row) and as spooled (one JSON line). */
export interface AuditRow {
  ts: string;
  decision_id: string;
  decision: "ALLOW" | "DENY";
  source_spiffe_id: string | null;
  source_pod: string | null;
  source_node: string | null;
  dest_spiffe_id: string | null;
  dest_port: number | null;
  operator_subject: string | null;
  operator_roles: string[] | null;
  operator_mfa: boolean | null;
  operator_incident: string | null;
  target_service: string | null;
  target_action: string | null;
  policy_matched: string | null;
  latency_us: number;
  enforced: boolean;
  reason: string;
  policy_version: string;
  origin: string;
  caller: string | null;
  chain_id: string;
  seq: number;
  /** Hex sha256. */
  prev_hash: string;
  /** Hex sha256. */
  hash: string;
}

/** One link of a chain: the record at `seq` has hash `hash` (seq 0: the chain's genesis). */
export interface ChainLink {
  chain_id: string;
  seq: number;
  /** Hex sha256. */
  hash: string;
}

/**
 * What a writer run declares about its chain before the chain's first record is stored
 * (zt_audit.chains, and every checkpoint listing the chain). Its canonical JSON is hashed
 * into the genesis, so none of it can change without breaking the chain's first link.
 */
export interface ChainDeclaration {
  chain_id: string;
  writer_id: string;
  /** RFC 3339 UTC with milliseconds: when the writer run began (every record came after). */
  started_at: string;
  hash_version: 2;
  /** The head of the writer's previous chain when this one began (null: the writer's first chain). */
  predecessor: ChainLink | null;
}

/** Genesis of a chain written before chains were declared (hash_version 1). */
export function genesisHash(chainId: string): string {
  return sha("sha256", "zt-audit-genesis\n" + chainId, "hex");
}

/** prev_hash of a declared chain's first record. */
export function declaredGenesis(d: ChainDeclaration): string {
  return sha("sha256", "zt-audit-genesis-v2\n" + canonicalJson(d), "hex");
}

/** JSON with object keys sorted at every level: one byte sequence per value. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return "[" + v.map(canonicalJson).join(",") + "]";
  if (v !== null && typeof v === "object") {
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(obj[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}

const str = JSON.stringify;

// Nothing JSON.stringify would escape: no quote, backslash, control character or surrogate.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** JSON.stringify(s) for a string, without the call for the common plain case (half the cost). */
function qs(s: string): string {
  return PLAIN.test(s) ? '"' + s + '"' : str(s);
}

function strOrNull(v: string | null): string {
  return v === null ? "null" : qs(v);
}

/**
 * canonicalJson(record) written out for the fixed record shape: the generic version sorts
 * keys of every object, which dominated the writer's CPU time. test/audit/validate.test.ts
 * checks both agree. The engine thread writes the same text when it hands a record over
 * (record-json.ts), so the writer thread hashes that text as it came.
 */
export function canonicalRecord(r: AuditRecord): string {
  const d = r.destination;
  const o = r.operator;
  const s = r.source;
  const t = r.target;
  return (
    '{"caller":' + strOrNull(r.caller) +
    ',"decision":' + qs(r.decision) +
    ',"decision_id":' + qs(r.decision_id) +
    ',"destination":' + (d === null ? "null" : '{"port":' + str(d.port) + ',"spiffe_id":' + qs(d.spiffe_id) + "}") +
    ',"enforced":' + str(r.enforced) +
    ',"latency_us":' + str(r.latency_us) +
    ',"operator":' +
    (o === null
      ? "null"
      : '{"incident":' + strOrNull(o.incident) + ',"mfa":' + str(o.mfa) + ',"roles":[' + o.roles.map((x) => qs(x)).join(",") + '],"subject":' + qs(o.subject) + "}") +
    ',"origin":' + qs(r.origin) +
    ',"policy_matched":' + strOrNull(r.policy_matched) +
    ',"policy_version":' + qs(r.policy_version) +
    ',"reason":' + qs(r.reason) +
    ',"source":' + (s === null ? "null" : '{"node":' + strOrNull(s.node) + ',"pod":' + strOrNull(s.pod) + ',"spiffe_id":' + qs(s.spiffe_id) + "}") +
    ',"target":' + (t === null ? "null" : '{"action":' + qs(t.action) + ',"service":' + qs(t.service) + "}") +
    ',"timestamp":' + qs(r.timestamp) +
    "}"
  );
}

/** What precedes the record in a link's canonical JSON: one string per chain. */
export function linkPrefix(chainId: string): string {
  return '{"chain_id":' + qs(chainId) + ',"record":';
}

/** canonicalJson({chain_id, seq, record}) from the record's canonical JSON. */
export function canonicalLink(chainId: string, seq: number, r: AuditRecord): string {
  return linkPrefix(chainId) + canonicalRecord(r) + ',"seq":' + str(seq) + "}";
}

// One-shot crypto.hash: no Hash object per record (about a microsecond less than createHash per link).
export function linkHash(prevHash: string, chainId: string, seq: number, record: AuditRecord): string {
  return sha("sha256", prevHash + "\n" + canonicalLink(chainId, seq, record), "hex");
}

/**
 * linkHash from text already written: `prefix` is linkPrefix(chain id), `record` the
 * record's canonicalRecord() text. The writer thread's path: the record is not written again.
 */
export function linkHashOf(prevHash: string, prefix: string, seq: number, record: string): string {
  return sha("sha256", prevHash + "\n" + prefix + record + ',"seq":' + seq + "}", "hex");
}

/** The record columns of a row (every column but the chain's). */
export type RecordColumns = Omit<AuditRow, "chain_id" | "seq" | "prev_hash" | "hash">;

/** The columns a normalised record is stored as. */
export function recordColumns(r: AuditRecord): RecordColumns {
  return {
    ts: r.timestamp,
    decision_id: r.decision_id,
    decision: r.decision,
    source_spiffe_id: r.source?.spiffe_id ?? null,
    source_pod: r.source?.pod ?? null,
    source_node: r.source?.node ?? null,
    dest_spiffe_id: r.destination?.spiffe_id ?? null,
    dest_port: r.destination?.port ?? null,
    operator_subject: r.operator?.subject ?? null,
    operator_roles: r.operator?.roles ?? null,
    operator_mfa: r.operator?.mfa ?? null,
    operator_incident: r.operator?.incident ?? null,
    target_service: r.target?.service ?? null,
    target_action: r.target?.action ?? null,
    policy_matched: r.policy_matched,
    latency_us: r.latency_us,
    enforced: r.enforced,
    reason: r.reason,
    policy_version: r.policy_version,
    origin: r.origin,
    caller: r.caller,
  };
}

/** Builds the row for a normalised record and its place in the chain. */
export function recordToRow(r: AuditRecord, chainId: string, seq: number, prevHash: string): AuditRow {
  return chainedRow(r, chainId, seq, prevHash, linkHash(prevHash, chainId, seq, r));
}

/** The row for a record whose link hash is already computed. */
export function chainedRow(r: AuditRecord, chainId: string, seq: number, prevHash: string, hash: string): AuditRow {
  const row = recordColumns(r) as AuditRow;
  row.chain_id = chainId;
  row.seq = seq;
  row.prev_hash = prevHash;
  row.hash = hash;
  return row;
}

/**
 * Columns as read back from PostgreSQL: the record columns of AuditRow, with timestamps as
 * Date, bigints possibly as strings and the decision as plain text.
 */
export type StoredColumns = Omit<AuditRow, "ts" | "decision" | "latency_us" | "chain_id" | "seq" | "prev_hash" | "hash"> & {
  ts: Date | string;
  decision: string;
  latency_us: number | string;
};

/** The seed-shaped record a row stands for (the API's response shape and the hashed content). */
export function rowToRecord(c: StoredColumns): AuditRecord {
  const operator = c.operator_subject !== null || c.target_service !== null;
  return {
    timestamp: (c.ts instanceof Date ? c.ts : new Date(c.ts)).toISOString(),
    decision: c.decision as AuditRecord["decision"],
    // Agent requests have a destination and no source.
    source: c.source_spiffe_id !== null ? { spiffe_id: c.source_spiffe_id, pod: c.source_pod, node: c.source_node } : null,
    destination: c.dest_spiffe_id !== null ? { spiffe_id: c.dest_spiffe_id, port: c.dest_port as number } : null,
    operator: operator
      ? { subject: c.operator_subject as string, roles: c.operator_roles ?? [], mfa: c.operator_mfa as boolean, incident: c.operator_incident }
      : null,
    target: operator ? { service: c.target_service as string, action: c.target_action as string } : null,
    policy_matched: c.policy_matched,
    latency_us: Number(c.latency_us),
    decision_id: c.decision_id,
    enforced: c.enforced,
    reason: c.reason,
    policy_version: c.policy_version,
    origin: c.origin,
    caller: c.caller,
  };
}

/** The column list shared by INSERT, SELECT and verify (order matters for the JSON recordset). */
export const RECORD_COLUMNS = [
  "ts",
  "decision_id",
  "decision",
  "source_spiffe_id",
  "source_pod",
  "source_node",
  "dest_spiffe_id",
  "dest_port",
  "operator_subject",
  "operator_roles",
  "operator_mfa",
  "operator_incident",
  "target_service",
  "target_action",
  "policy_matched",
  "latency_us",
  "enforced",
  "reason",
  "policy_version",
  "origin",
  "caller",
] as const;

/**
 * The SELECT list that reads RECORD_COLUMNS back in the shapes rowToRecord expects. The roles
 * array comes back as JSON so that no connection needs postgres.js's array-type lookup at
 * connect time (see connect() in index.ts).
 */
export function recordSelectList(): string {
  return RECORD_COLUMNS.map((c) =>
    c === "decision_id" ? "decision_id::text AS decision_id" : c === "operator_roles" ? "array_to_json(operator_roles) AS operator_roles" : c,
  ).join(", ");
}

/** Read back for verify: the timestamp in whole microseconds (a Date would hide sub-millisecond edits). */
export type VerifiedColumns = StoredColumns & { ts_us: string };

function sameValue(have: unknown, want: unknown): boolean {
  if (want === null || have === null) return have === want;
  if (Array.isArray(want)) {
    return Array.isArray(have) && have.length === want.length && want.every((w, i) => have[i] === w);
  }
  if (typeof want === "number") return String(have) === String(want);
  return have === want;
}

/**
 * Every stored column is covered by the record's hash: the row must be exactly the row the
 * record it stands for would be stored as. A column the record does not carry (operator
 * roles on a service record, a pod without a source, a sub-millisecond timestamp) would
 * otherwise be free to change. Returns the first column that differs, or null.
 */
export function uncoveredColumn(c: VerifiedColumns): string | null {
  const us = c.ts_us;
  if (!/^-?\d+000$/.test(us)) return "ts";
  const record = rowToRecord(c);
  if (String(Date.parse(record.timestamp) * 1000) !== us) return "ts";
  const expected = recordColumns(record) as unknown as Record<string, unknown>;
  const stored = c as unknown as Record<string, unknown>;
  for (const col of RECORD_COLUMNS) {
    if (col === "ts") continue;
    if (!sameValue(stored[col], expected[col])) return col;
  }
  return null;
}
