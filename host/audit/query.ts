// GET /v1/audit: filtered, newest-first listing with keyset pagination. The cursor is the
// (ts, decision_id) of the last row returned, so paging is stable while records keep
// arriving (new rows sort before the cursor and never shift later pages).
import type { Sql } from "postgres";
import { parseSpiffeId, parseSpiffePattern } from "../../compiler/spiffe.js";
import { recordSelectList, rowToRecord, type StoredColumns } from "./chain.js";
import { SCHEMA } from "./migrations.js";
import type { AuditRecord } from "./record.js";
import type { FieldError, Validated } from "./validate.js";

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export interface AuditQuery {
  since: Date | null;
  until: Date | null;
  decision: "ALLOW" | "DENY" | null;
  /** SPIFFE ID (exact) or SPIFFE pattern with `*` / `**` segments. */
  source: string | null;
  destination: string | null;
  port: number | null;
  /** `<policy>/<rule>` exactly, or `<policy>` for all its rules. */
  policy: string | null;
  /** Operator subject, exactly. */
  subject: string | null;
  /** Reason code exactly (`default_deny`), or a prefix ending in `*` (`condition_failed:*`). */
  reason: string | null;
  /** The incident an operator request referenced, exactly. */
  incident: string | null;
  enforced: boolean | null;
  limit: number;
  cursor: { tsMicros: string; decisionId: string } | null;
}

export interface AuditPage {
  records: AuditRecord[];
  next_cursor: string | null;
}

const QUERY_KEYS = ["since", "until", "decision", "source", "destination", "port", "policy", "subject", "reason", "incident", "enforced", "limit", "cursor"];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

function fail(path: string, message: string): { ok: false; error: FieldError } {
  return { ok: false, error: { path, message } };
}

export function parseTime(v: string, path: string): Validated<Date> {
  if (!RFC3339.test(v)) return fail(path, 'must be an RFC 3339 timestamp, e.g. "2026-02-23T14:30:00Z"');
  const d = new Date(v);
  if (!Number.isFinite(d.getTime())) return fail(path, "is not a valid date");
  return { ok: true, value: d };
}

function checkSpiffeFilter(v: string, path: string): FieldError | null {
  if (v.includes("*")) {
    const p = parseSpiffePattern(v);
    return p.ok ? null : { path, message: `invalid SPIFFE pattern: ${p.error}` };
  }
  const id = parseSpiffeId(v);
  return id.ok ? null : { path, message: `invalid SPIFFE ID: ${id.error}` };
}

/** Parses the query string strictly: unknown or repeated parameters are errors, not ignored. */
export function parseAuditQuery(params: Record<string, string[]>): Validated<AuditQuery> {
  for (const k of Object.keys(params)) {
    if (!QUERY_KEYS.includes(k)) return fail(`query.${k}`, `unknown parameter (allowed: ${QUERY_KEYS.join(", ")})`);
    if ((params[k] as string[]).length > 1) return fail(`query.${k}`, "given more than once");
  }
  const get = (k: string): string | null => params[k]?.[0] ?? null;
  const q: AuditQuery = {
    since: null,
    until: null,
    decision: null,
    source: null,
    destination: null,
    port: null,
    policy: null,
    subject: null,
    reason: null,
    incident: null,
    enforced: null,
    limit: DEFAULT_LIMIT,
    cursor: null,
  };
  for (const k of ["since", "until"] as const) {
    const v = get(k);
    if (v === null) continue;
    const t = parseTime(v, `query.${k}`);
    if (!t.ok) return t;
    q[k] = t.value;
  }
  const decision = get("decision");
  if (decision !== null) {
    const d = decision.toUpperCase();
    if (d !== "ALLOW" && d !== "DENY") return fail("query.decision", 'must be "ALLOW" or "DENY"');
    q.decision = d;
  }
  for (const k of ["source", "destination"] as const) {
    const v = get(k);
    if (v === null) continue;
    const err = checkSpiffeFilter(v, `query.${k}`);
    if (err) return { ok: false, error: err };
    q[k] = v;
  }
  const port = get("port");
  if (port !== null) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return fail("query.port", "must be a port number 1-65535");
    q.port = Number(port);
  }
  for (const k of ["policy", "subject", "reason", "incident"] as const) {
    const v = get(k);
    if (v === null) continue;
    if (v.length === 0 || v.length > 512 || v.includes("\u0000")) return fail(`query.${k}`, "must be a non-empty string of at most 512 characters");
    q[k] = v;
  }
  const enforced = get("enforced");
  if (enforced !== null) {
    if (enforced !== "true" && enforced !== "false") return fail("query.enforced", 'must be "true" or "false"');
    q.enforced = enforced === "true";
  }
  const limit = get("limit");
  if (limit !== null) {
    if (!/^\d+$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_LIMIT) return fail("query.limit", `must be an integer 1-${MAX_LIMIT}`);
    q.limit = Number(limit);
  }
  const cursor = get("cursor");
  if (cursor !== null) {
    const c = decodeCursor(cursor);
    if (!c) return fail("query.cursor", "is not a cursor returned by this API");
    q.cursor = c;
  }
  return { ok: true, value: q };
}

function encodeCursor(tsMicros: string, decisionId: string): string {
  return Buffer.from(`${tsMicros}|${decisionId}`, "utf8").toString("base64url");
}

export function decodeCursor(s: string): { tsMicros: string; decisionId: string } | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(s)) return null;
  const m = /^(-?\d{1,19})\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(Buffer.from(s, "base64url").toString("utf8"));
  return m ? { tsMicros: m[1] as string, decisionId: m[2] as string } : null;
}

/** A SPIFFE pattern as an anchored POSIX regex: `*` is one segment, `**` one or more. */
export function patternRegex(pattern: string): string {
  const p = parseSpiffePattern(pattern);
  if (!p.ok) throw new Error(p.error);
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  let re = "^" + esc(`spiffe://${p.value.trustDomain}`);
  for (const seg of p.value.segments) {
    if (seg.kind === "literal") re += "/" + esc(seg.value);
    else if (seg.kind === "star") re += "/[^/]+";
    else re += "(/[^/]+)+";
  }
  return re + "$";
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, "\\$&");
}

/** The SELECT for a query (exported so tests can EXPLAIN it). */
export function auditQuerySql(q: AuditQuery): { text: string; params: (string | number | boolean)[] } {
  const where: string[] = [];
  const params: (string | number | boolean)[] = [];
  const p = (v: string | number | boolean): string => {
    params.push(v);
    return `$${params.length}`;
  };
  if (q.since) where.push(`ts >= ${p(q.since.toISOString())}::timestamptz`);
  if (q.until) where.push(`ts < ${p(q.until.toISOString())}::timestamptz`);
  if (q.decision) where.push(`decision = ${p(q.decision)}`);
  // COLLATE "C" matches the filter indexes (migration 2): equality, and a pattern's literal
  // prefix as an index range.
  if (q.source) where.push(q.source.includes("*") ? `source_spiffe_id COLLATE "C" ~ ${p(patternRegex(q.source))}` : `source_spiffe_id COLLATE "C" = ${p(q.source)}`);
  if (q.destination) where.push(q.destination.includes("*") ? `dest_spiffe_id COLLATE "C" ~ ${p(patternRegex(q.destination))}` : `dest_spiffe_id COLLATE "C" = ${p(q.destination)}`);
  if (q.port !== null) where.push(`dest_port = ${p(q.port)}::integer`);
  if (q.policy) {
    where.push(q.policy.includes("/") ? `policy_matched COLLATE "C" = ${p(q.policy)}` : `policy_matched COLLATE "C" LIKE ${p(likeEscape(q.policy) + "/%")}`);
  }
  if (q.subject) where.push(`operator_subject COLLATE "C" = ${p(q.subject)}`);
  if (q.reason) {
    where.push(q.reason.endsWith("*") ? `reason COLLATE "C" LIKE ${p(likeEscape(q.reason.slice(0, -1)) + "%")}` : `reason COLLATE "C" = ${p(q.reason)}`);
  }
  if (q.incident) where.push(`operator_incident COLLATE "C" = ${p(q.incident)}`);
  if (q.enforced !== null) where.push(`enforced = ${p(q.enforced)}::boolean`);
  if (q.cursor) {
    where.push(`(d.ts, d.decision_id) < (timestamptz 'epoch' + ${p(q.cursor.tsMicros)}::bigint * interval '1 microsecond', ${p(q.cursor.decisionId)}::uuid)`);
  }
  const text = `
    SELECT ${recordSelectList()},
           ((extract(epoch from ts) * 1000000)::bigint)::text AS ts_us
      FROM ${SCHEMA}.decisions d
     ${where.length ? "WHERE " + where.join(" AND ") : ""}
     ORDER BY d.ts DESC, d.decision_id DESC
     LIMIT ${q.limit + 1}`;
  return { text, params };
}

export async function queryAudit(sql: Sql, q: AuditQuery): Promise<AuditPage> {
  const { text, params } = auditQuerySql(q);
  const rows = await sql.unsafe<(StoredColumns & { ts_us: string })[]>(text, params);
  const more = rows.length > q.limit;
  const page = more ? rows.slice(0, q.limit) : rows;
  const last = page[page.length - 1];
  return {
    records: page.map(rowToRecord),
    next_cursor: more && last ? encodeCursor(last.ts_us, last.decision_id) : null,
  };
}
