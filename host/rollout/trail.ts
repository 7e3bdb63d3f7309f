// The one place the rollout tools read the audit trail. A window's decisions are read in
// chunks: consecutive time slices [from, to) of the window, each sized from the previous one's
// density to hold about `chunkRows` records, so each chunk is one range scan of the primary
// key's leading column and the cursor is the slice's end. Within a chunk, PostgreSQL groups the
// records by what a decision depends on (the request, the recorded decision and reason) with
// their count, first and last time and two sample ids; replay decides each group once, and a
// chunk returns as many rows as it has distinct requests, never as many as it has records. It
// reads only the columns replay and suggest need, so the audit room may reshape the rest of its
// row freely (issues 18, 25).
import postgres, { type Sql } from "postgres";
import { SCHEMA } from "../audit/migrations.js";
import { patternRegex } from "../audit/query.js";

export interface TrailWindow {
  readonly since: Date;
  readonly until: Date;
  /** A SPIFFE ID, or a pattern with `*` / `**` segments; null: every destination. */
  readonly destination: string | null;
  /** Only service decisions that were DENY and not enforced (observe mode's would-be denials). */
  readonly observedDenialsOnly?: boolean;
}

/** Decisions of one chunk that share a request, a recorded decision and a reason. */
export interface TrailGroup {
  readonly count: number;
  /** RFC 3339 UTC. */
  readonly first: string;
  readonly last: string;
  /** Decision ids of the group's records: the smallest and the largest id of the chunk's. */
  readonly samples: readonly string[];
  readonly allow: boolean;
  readonly reason: string;
  /** Service requests. */
  readonly source: string | null;
  readonly destination: string | null;
  readonly port: number | null;
  /** Operator requests. */
  readonly roles: readonly string[] | null;
  readonly mfa: boolean | null;
  /** The request referenced an incident (the trail keeps its id, not whether it was active). */
  readonly incident: boolean;
  readonly service: string | null;
  readonly action: string | null;
}

export interface TrailChunk {
  readonly groups: readonly TrailGroup[];
  readonly records: number;
  /** The chunk's last timestamp (RFC 3339 UTC), for progress. */
  readonly through: string;
}

/** A service flow seen in the trail: how often, and when first and last (RFC 3339 UTC). */
export interface SeenFlow {
  source: string;
  destination: string;
  port: number;
  count: number;
  first_seen: string;
  last_seen: string;
}

/** The window holds no record (replay and suggest: a usage error, 400 no_records). */
export class NoRecordsError extends Error {
  constructor(w: TrailWindow) {
    super(`no audit records in the window ${w.since.toISOString()} .. ${w.until.toISOString()}${w.destination ? ` for destination ${w.destination}` : ""}`);
    this.name = "NoRecordsError";
  }
}

export const DEFAULT_CHUNK = 200_000;
/** Sample decision ids kept per flow (two per chunk are offered). */
export const SAMPLES = 3;

/**
 * A connection for reading the trail: one of its own (a long window never holds the engine's
 * query pool), in UTC (timestamps come back as "2026-02-23 14:30:00.123+00"), no type fetch.
 */
export function openTrailConnection(dsn: string, app: string): Sql {
  return postgres(dsn, { max: 1, connect_timeout: 10, idle_timeout: 60, fetch_types: false, onnotice: () => undefined, connection: { application_name: app, TimeZone: "UTC" } });
}

/** PostgreSQL's timestamptz text ("2026-02-23 14:30:00.123+00", any offset) -> RFC 3339 UTC. */
export function isoFromTrail(ts: string): string {
  if (ts.endsWith("+00")) return ts.slice(0, -3).replace(" ", "T") + "Z";
  const m = /^(.*) ([^+-]*)([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?$/.exec(ts);
  return m ? new Date(`${m[1]}T${m[2]}${m[3]}:${m[4] ?? "00"}`).toISOString() : ts;
}

function where(w: TrailWindow, params: Array<string | number>): string {
  const p = (v: string): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const parts = [`d.ts >= ${p(w.since.toISOString())}::timestamptz`, `d.ts < ${p(w.until.toISOString())}::timestamptz`];
  // COLLATE "C" as in GET /v1/audit: the destination index (migration 2) serves the filter.
  if (w.destination !== null) parts.push(w.destination.includes("*") ? `d.dest_spiffe_id COLLATE "C" ~ ${p(patternRegex(w.destination))}` : `d.dest_spiffe_id COLLATE "C" = ${p(w.destination)}`);
  if (w.observedDenialsOnly) parts.push(`d.decision = 'DENY' AND NOT d.enforced AND d.dest_spiffe_id IS NOT NULL AND d.source_spiffe_id IS NOT NULL`);
  return parts.join(" AND ");
}

type GroupRow = [number, string, string, string, string, string, string, string | null, string | null, number | null, string | null, boolean | null, boolean, string | null, string | null];

/** The grouped records of [from, to). */
async function chunk(sql: Sql, filter: string, base: ReadonlyArray<string | number>, from: Date, to: Date): Promise<TrailChunk> {
  const params = [...base, from.toISOString(), to.toISOString()];
  const range = `${filter} AND d.ts >= $${params.length - 1}::timestamptz AND d.ts < $${params.length}::timestamptz`;
  // min/max of the id as text: two samples without collecting every id of the group (array_agg
  // with ORDER BY cost PostgreSQL more than the rest of the query).
  const rows = (await sql
    .unsafe(
      `SELECT count(*)::int, min(d.ts)::text, max(d.ts)::text, min(d.decision_id::text), max(d.decision_id::text),
              d.decision, d.reason, d.source_spiffe_id, d.dest_spiffe_id, d.dest_port, to_json(d.operator_roles)::text,
              d.operator_mfa, d.operator_incident IS NOT NULL, d.target_service, d.target_action
         FROM ${SCHEMA}.decisions d WHERE ${range}
        GROUP BY 6, 7, 8, 9, 10, 11, 12, 13, 14, 15`,
      params,
    )
    .values()) as unknown as GroupRow[];
  let records = 0;
  const groups = rows.map((r): TrailGroup => {
    records += r[0];
    return {
      count: r[0],
      first: isoFromTrail(r[1]),
      last: isoFromTrail(r[2]),
      samples: r[3] === r[4] ? [r[3]] : [r[3], r[4]],
      allow: r[5] === "ALLOW",
      reason: r[6],
      source: r[7],
      destination: r[8],
      port: r[9],
      roles: r[10] === null ? null : (JSON.parse(r[10]) as string[]),
      mfa: r[11],
      incident: r[12],
      service: r[13],
      action: r[14],
    };
  });
  // Oldest first, so that first/last seen and the samples merge in time order.
  groups.sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  return { groups, records, through: to.toISOString() };
}

/**
 * The window's decisions, oldest first, a chunk (time slice) at a time. The first slice is a
 * 64th of the window; each next one is sized from the last one's density to hold about
 * `chunkRows` records (a slice that held none doubles). Slices are half-open and adjacent:
 * every record is in exactly one.
 */
export async function* readTrail(sql: Sql, w: TrailWindow, chunkRows = DEFAULT_CHUNK): AsyncGenerator<TrailChunk> {
  const base: Array<string | number> = [];
  const filter = where(w, base);
  const end = w.until.getTime();
  let from = w.since.getTime();
  let span = Math.max(1, Math.ceil((end - from) / 64));
  while (from < end) {
    const to = Math.min(end, from + span);
    const c = await chunk(sql, filter, base, new Date(from), new Date(to));
    if (c.records > 0) yield c;
    const took = to - from;
    span = c.records === 0 ? took * 2 : Math.max(1, Math.floor((took * chunkRows) / c.records));
    from = to;
  }
}
