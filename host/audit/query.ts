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

/** The newest page of everything: no filter, the default limit. */
export function unfilteredQuery(): AuditQuery {
  return {
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
}

/** Parses the query string strictly: unknown or repeated parameters are errors, not ignored. */
export function parseAuditQuery(params: Record<string, string[]>): Validated<AuditQuery> {
  for (const k of Object.keys(params)) {
    if (!QUERY_KEYS.includes(k)) return fail(`query.${k}`, `unknown parameter (allowed: ${QUERY_KEYS.join(", ")})`);
    if ((params[k] as string[]).length > 1) return fail(`query.${k}`, "given more than once");
  }
  const get = (k: string): string | null => params[k]?.[0] ?? null;
  const q = unfilteredQuery();
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

/** The literal text every ID matching a SPIFFE pattern starts with: up to its first wildcard segment, with that slash. */
export function patternPrefix(pattern: string): string {
  const p = parseSpiffePattern(pattern);
  if (!p.ok) throw new Error(p.error);
  let prefix = `spiffe://${p.value.trustDomain}/`;
  for (const seg of p.value.segments) {
    if (seg.kind !== "literal") break;
    prefix += seg.value + "/";
  }
  return prefix;
}

/**
 * [prefix, upper): in byte order (COLLATE "C"), exactly the strings that start with `prefix`.
 * Null when the last character cannot be incremented without leaving the BMP (then the
 * filter is still exact, only without an index range).
 */
export function prefixRange(prefix: string): [string, string] | null {
  const last = prefix.charCodeAt(prefix.length - 1);
  if (prefix.length === 0 || last >= 0xd7ff) return null;
  return [prefix, prefix.slice(0, -1) + String.fromCharCode(last + 1)];
}

/**
 * Reasons left out of the partial reason index (migration 4): the ones most decisions carry,
 * found fast by the newest-first scan anyway. A filter that cannot match them says so in
 * the query text, so that even a generic plan may use the index.
 */
export const UNINDEXED_REASONS = ["allowed_by_rule", "default_deny"] as const;

/** A slice of the trail's time line: `ts >= from AND ts < to`, null for an open end. */
export interface TimeSlice {
  from: Date | null;
  to: Date | null;
}

/**
 * The SELECT for a query (exported so tests can EXPLAIN it). With a slice, the time bounds are
 * the slice's (already inside since/until): constants the planner prunes partitions with.
 */
export function auditQuerySql(q: AuditQuery, slice: TimeSlice | null = null): { text: string; params: (string | number | boolean)[] } {
  const where: string[] = [];
  const params: (string | number | boolean)[] = [];
  const p = (v: string | number | boolean): string => {
    params.push(v);
    return `$${params.length}`;
  };
  // A literal prefix as an explicit range: the index range a planner would derive from a
  // regex or LIKE constant, stated so that a generic plan (parameters unknown) has it too.
  const range = (column: string, prefix: string): boolean => {
    const r = prefixRange(prefix);
    if (r) where.push(`${column} COLLATE "C" >= ${p(r[0])}`, `${column} COLLATE "C" < ${p(r[1])}`);
    return r !== null;
  };
  const spiffe = (column: string, v: string): void => {
    if (!v.includes("*")) {
      where.push(`${column} COLLATE "C" = ${p(v)}`);
      return;
    }
    range(column, patternPrefix(v));
    // The function form of ~: the planner estimates it with a default instead of running the
    // regex over each partition's statistics (most of the planning time across many partitions).
    where.push(`textregexeq(${column} COLLATE "C", ${p(patternRegex(v))})`);
  };
  if (slice) {
    if (slice.from) where.push(`ts >= ${p(slice.from.toISOString())}::timestamptz`);
    if (slice.to) where.push(`ts < ${p(slice.to.toISOString())}::timestamptz`);
  } else {
    if (q.since) where.push(`ts >= ${p(q.since.toISOString())}::timestamptz`);
    if (q.until) where.push(`ts < ${p(q.until.toISOString())}::timestamptz`);
  }
  // A literal, not a parameter (two values, so two statement shapes at most): a generic plan
  // then knows whether the DENY-only partial index (migration 5) holds the rows.
  if (q.decision) where.push(`decision = '${q.decision}'`);
  // COLLATE "C" matches the filter indexes (migration 2): equality, and a pattern's literal
  // prefix as an index range.
  if (q.source) spiffe("source_spiffe_id", q.source);
  if (q.destination) spiffe("dest_spiffe_id", q.destination);
  if (q.port !== null) where.push(`dest_port = ${p(q.port)}::integer`);
  if (q.policy) {
    if (q.policy.includes("/")) where.push(`policy_matched COLLATE "C" = ${p(q.policy)}`);
    // The range is the prefix exactly; LIKE only where no range could be stated.
    else if (!range("policy_matched", q.policy + "/")) where.push(`policy_matched COLLATE "C" LIKE ${p(likeEscape(q.policy) + "/%")}`);
  }
  if (q.subject) where.push(`operator_subject COLLATE "C" = ${p(q.subject)}`);
  if (q.reason) {
    const prefix = q.reason.endsWith("*") ? q.reason.slice(0, -1) : null;
    if (prefix === null) where.push(`reason COLLATE "C" = ${p(q.reason)}`);
    // "*" alone: every reason, no condition.
    else if (prefix !== "" && !range("reason", prefix)) where.push(`reason COLLATE "C" LIKE ${p(likeEscape(prefix) + "%")}`);
    const canMatchUnindexed = UNINDEXED_REASONS.some((r) => (prefix === null ? r === q.reason : r.startsWith(prefix)));
    if (!canMatchUnindexed) where.push(`reason NOT IN (${UNINDEXED_REASONS.map((r) => `'${r}'`).join(", ")})`);
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
     LIMIT ${sqlLimit(q.limit)}`;
  return { text, params };
}

/**
 * The LIMIT in the statement's text: the page and one more row (to know whether there is a
 * next page), rounded up to a power of two. The limit is part of the prepared statement's text
 * (a literal keeps the planner's LIMIT costing exact), so each distinct value would be a
 * statement and a generic plan over every partition kept per connection; rounded, a client
 * choosing limits can make at most 11 per filter shape. The rows beyond the page are dropped.
 */
export function sqlLimit(limit: number): number {
  return 2 ** Math.ceil(Math.log2(limit + 1));
}

/** Named (prepared) statements, and the extended protocol even without parameters: the simple one would plan the text anew. */
const PREPARED = { prepare: true, simple: false } as { prepare: true };

const DAY_MS = 24 * 60 * 60 * 1000;
/** Widths of the successive slices a page is looked for in, newest first; after them, the rest. */
export const SLICE_DAYS = [1, 4, 16, 64, 256] as const;

/**
 * The slices a page is looked for in, newest first: the day before the newest time the page can
 * hold (until, the cursor or now), then 4, 16, 64 and 256 days before that, then everything
 * older; each cut to since/until. A page most often fills in the first slice; a rare filter
 * reads all of them, but each sorts at most about four times what the ones before held.
 */
export function timeSlices(q: AuditQuery, now: Date = new Date()): TimeSlice[] {
  let newest = now.getTime();
  if (q.until) newest = Math.min(newest, q.until.getTime());
  if (q.cursor) newest = Math.min(newest, Math.floor(Number(q.cursor.tsMicros) / 1000) + 1);
  const since = q.since?.getTime() ?? null;
  const out: TimeSlice[] = [];
  let to: number | null = q.until?.getTime() ?? null;
  let from = newest;
  for (const days of [...SLICE_DAYS, null]) {
    from = days === null ? -Infinity : from - days * DAY_MS;
    const lower = since !== null && since >= from ? since : from;
    if (to !== null && lower >= to) break;
    out.push({ from: Number.isFinite(lower) ? new Date(lower) : null, to: to === null ? null : new Date(to) });
    if (since !== null && lower === since) break;
    to = from;
  }
  return out;
}

/**
 * Runs a query with a generic plan, prepared once per connection and query shape. A custom
 * plan is made per request by the planner, for every partition the query may touch: with a
 * year of day partitions that took 30 ms (equality) to 400 ms (patterns) per request, far more
 * than executing it. The generic plan prunes partitions at execution (time filters) and keeps
 * the per-partition index choice; the query text carries every literal a plan needs (prefix
 * ranges, the partial indexes' predicates). The shapes are bounded: one per set of filters
 * given and limit.
 */
export async function withGenericPlan<T extends readonly object[]>(sql: Sql, text: string, params: readonly (string | number | boolean)[], settings = ""): Promise<T> {
  return (await sql.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL plan_cache_mode = force_generic_plan${settings}`);
    return tx.unsafe(text, params as (string | number | boolean)[], PREPARED);
  })) as unknown as T;
}

type PageRow = StoredColumns & { ts_us: string };

/**
 * A generic plan multiplies the filters' average selectivities: two equality filters look like
 * a fraction of a row per partition, and the planner then sorts every match of the whole trail
 * (seconds for a busy source and destination, 10 million records). Without explicit sorts it
 * keeps the shape whose cost does not depend on the values: partitions newest first, each read
 * in time order through an index on (filter, ts) or the key, stopping at the limit.
 */
const NO_SORT = "; SET LOCAL enable_sort = off";

/** A SPIFFE pattern, a policy's rules or a reason prefix: a filter that may match one row or nearly all. */
export function hasPrefixFilter(q: AuditQuery): boolean {
  return Boolean(q.source?.includes("*") || q.destination?.includes("*") || (q.policy && !q.policy.includes("/")) || q.reason?.endsWith("*"));
}

/**
 * Whether every prefix filter of the query is served by a partial index that holds only rare
 * rows: a reason prefix that cannot match the reasons most records carry (the reason index,
 * migration 4), a policy's rules with decision=DENY (the DENY index, migration 5); no SPIFFE
 * pattern. Then the slices keep generic plans (RARE_SLICE_SETTINGS) whatever the values. A rare
 * prefix (`condition_failed:*`, a few records a day) fills its page only in late slices of 64
 * and 256 days, and planning those with their values, partition by partition, took longer than
 * reading them.
 */
export function rarePrefixSlices(q: AuditQuery): boolean {
  if (q.source?.includes("*") || q.destination?.includes("*")) return false;
  const policyPrefix = q.policy !== null && !q.policy.includes("/");
  const reasonPrefix = q.reason?.endsWith("*") ?? false;
  if (!policyPrefix && !reasonPrefix) return false;
  if (policyPrefix && (q.decision !== "DENY" || prefixRange(q.policy + "/") === null)) return false;
  if (reasonPrefix) {
    const prefix = (q.reason as string).slice(0, -1);
    if (prefix === "" || UNINDEXED_REASONS.some((r) => r.startsWith(prefix)) || prefixRange(prefix) === null) return false;
  }
  return true;
}

/**
 * The plan of those slices: generic (made once per connection and slice shape, partitions
 * outside the slice pruned at execution), without plain index scans, so each partition is a
 * bitmap scan of the partial index's range and the slice's matches are sorted. The other generic
 * shape, the key read newest first with the filter applied to each row, scans every row of a
 * slice when the prefix is rare; the sort it avoids holds at most what one slice matched, which
 * timeSlices bounds for a busy prefix (the slices before held less than a page).
 */
export const RARE_SLICE_SETTINGS = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_indexscan = off";

/**
 * One page. Equality filters, time windows and no filter at all: one statement with a generic
 * plan (withGenericPlan), whose per-partition index choice holds for any value. A prefix
 * filter may match one workload or the whole mesh, which a generic plan cannot know (it may
 * sort every match of the trail): it is looked for slice by slice (timeSlices), newest first,
 * each with a plan for its values over the few partitions of the slice, except a reason prefix
 * or a policy's denies that a partial index serves, whose slices keep generic plans (rarePrefixSlices).
 */
export async function queryAudit(sql: Sql, q: AuditQuery): Promise<AuditPage> {
  let rows: PageRow[];
  if (!hasPrefixFilter(q)) {
    const { text, params } = auditQuerySql(q);
    rows = await withGenericPlan<PageRow[]>(sql, text, params, NO_SORT);
  } else {
    const generic = rarePrefixSlices(q);
    rows = (await sql.begin(async (tx) => {
      if (generic) await tx.unsafe(RARE_SLICE_SETTINGS);
      const found: PageRow[] = [];
      for (const slice of timeSlices(q)) {
        const { text, params } = auditQuerySql(q, slice);
        found.push(...(await tx.unsafe<PageRow[]>(text, params, generic ? PREPARED : undefined)));
        if (found.length > q.limit) break;
      }
      return found;
    })) as unknown as PageRow[];
  }
  const more = rows.length > q.limit;
  const page = more ? rows.slice(0, q.limit) : rows;
  const last = page[page.length - 1];
  return {
    records: page.map(rowToRecord),
    next_cursor: more && last ? encodeCursor(last.ts_us, last.decision_id) : null,
  };
}
