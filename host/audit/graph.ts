// GET /v1/graph: the service dependency graph as observed in the audit trail over a time
// window (service requests only; operator requests are not service dependencies). In
// observe mode it is the map of real traffic the seed's rollout phase 1 asks for.
import type { Sql } from "postgres";
import { parseSpiffeId, workloadParts } from "../../compiler/spiffe.js";
import { SCHEMA } from "./migrations.js";
import { parseTime } from "./query.js";
import type { FieldError, Validated } from "./validate.js";

export const DEFAULT_GRAPH_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Edges in an answer unless `limit` says otherwise, and the most `limit` may ask for. */
export const DEFAULT_GRAPH_EDGES = 1000;
export const MAX_GRAPH_EDGES = 10_000;

export interface GraphQuery {
  since: Date;
  until: Date;
  format: "json" | "dot";
  /** The busiest edges (most decisions) kept in the answer; DEFAULT_GRAPH_EDGES when absent. */
  limit?: number;
}

export interface GraphNode {
  id: string;
  trust_domain: string | null;
  /** From the seed's layout spiffe://<td>/<cluster>/<namespace>/<service-account>; null for other shapes. */
  cluster: string | null;
  namespace: string | null;
  service_account: string | null;
}

export interface GraphEdge {
  source: string;
  destination: string;
  port: number;
  allow: number;
  /** Every DENY decision on the edge, enforced or not. */
  deny: number;
  /** DENY decisions with enforced=false: observe mode, traffic that would have been refused. */
  observed_deny: number;
  first_seen: string;
  last_seen: string;
}

export interface Graph {
  since: string;
  until: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
  limit: number;
  /** Edges observed in the window; more than `edges.length` when the answer is truncated. */
  total_edges: number;
  truncated: boolean;
}

export function parseGraphQuery(params: Record<string, string[]>, now: Date = new Date()): Validated<GraphQuery> {
  const allowed = ["since", "until", "format", "limit"];
  for (const k of Object.keys(params)) {
    if (!allowed.includes(k)) return { ok: false, error: { path: `query.${k}`, message: `unknown parameter (allowed: ${allowed.join(", ")})` } };
    if ((params[k] as string[]).length > 1) return { ok: false, error: { path: `query.${k}`, message: "given more than once" } };
  }
  let until = now;
  const u = params.until?.[0];
  if (u !== undefined) {
    const t = parseTime(u, "query.until");
    if (!t.ok) return t;
    until = t.value;
  }
  let since = new Date(until.getTime() - DEFAULT_GRAPH_WINDOW_MS);
  const s = params.since?.[0];
  if (s !== undefined) {
    const t = parseTime(s, "query.since");
    if (!t.ok) return t;
    since = t.value;
  }
  if (since.getTime() >= until.getTime()) {
    const error: FieldError = { path: "query.since", message: "must be before until" };
    return { ok: false, error };
  }
  const f = params.format?.[0] ?? "json";
  if (f !== "json" && f !== "dot") return { ok: false, error: { path: "query.format", message: 'must be "json" or "dot"' } };
  const l = params.limit?.[0];
  let limit = DEFAULT_GRAPH_EDGES;
  if (l !== undefined) {
    limit = /^\d{1,6}$/.test(l) ? Number(l) : 0;
    if (limit < 1 || limit > MAX_GRAPH_EDGES) return { ok: false, error: { path: "query.limit", message: `must be a whole number from 1 to ${MAX_GRAPH_EDGES}` } };
  }
  return { ok: true, value: { since, until, format: f, limit } };
}

function nodeFor(id: string): GraphNode {
  const parsed = parseSpiffeId(id);
  const parts = parsed.ok ? workloadParts(parsed.value) : null;
  return {
    id,
    trust_domain: parsed.ok ? parsed.value.trustDomain : null,
    cluster: parts?.cluster ?? null,
    namespace: parts?.namespace ?? null,
    service_account: parts?.serviceAccount ?? null,
  };
}

/** The columns an answer's edges come in, and the busiest-first cut both graph queries end with. */
function topEdges(from: string): string {
  return `SELECT * FROM (
       SELECT source, destination, port, sum(allow)::bigint AS allow, sum(deny)::bigint AS deny,
              sum(observed_deny)::bigint AS observed_deny, min(first_seen) AS first_seen,
              max(last_seen) AS last_seen, count(*) OVER () AS total
         FROM (${from}) AS parts
        GROUP BY 1, 2, 3
        ORDER BY sum(allow) + sum(deny) DESC, 1, 2, 3
        LIMIT $3) AS top
      ORDER BY 1, 2, 3`;
}

/** The window's service records grouped by edge, from the trail, with `bounds` on ts (a SQL condition). */
function rawEdges(alias: string, bounds: string): string {
  return `SELECT ${alias}.source_spiffe_id AS source, ${alias}.dest_spiffe_id AS destination, ${alias}.dest_port AS port,
              count(*) FILTER (WHERE ${alias}.decision = 'ALLOW') AS allow,
              count(*) FILTER (WHERE ${alias}.decision = 'DENY') AS deny,
              count(*) FILTER (WHERE ${alias}.decision = 'DENY' AND NOT ${alias}.enforced) AS observed_deny,
              min(${alias}.ts) AS first_seen, max(${alias}.ts) AS last_seen
         FROM ${bounds}
        GROUP BY 1, 2, 3`;
}

/**
 * The reference: every service record of the window aggregated from the trail. The answer of
 * graphSql must be exactly this one's (test/audit/graph-rollup.property.test.ts).
 */
export function graphRawSql(q: GraphQuery): { text: string; params: (string | number)[] } {
  const limit = Math.min(q.limit ?? DEFAULT_GRAPH_EDGES, MAX_GRAPH_EDGES);
  const from = rawEdges(
    "d",
    `${SCHEMA}.decisions d WHERE d.ts >= $1::timestamptz AND d.ts < $2::timestamptz AND d.source_spiffe_id IS NOT NULL`,
  );
  return { text: topEdges(from), params: [q.since.toISOString(), q.until.toISOString(), limit] };
}

/**
 * The graph's SELECT (exported so tests and the benchmark can EXPLAIN it): the hours the window
 * covers whole that the roll-up holds and no late record has marked since (migration 6), from
 * graph_hours (an hour has rows there only once rolled up: the roll-up writes them and the
 * hour's graph_rolled_hours row in one transaction, retention deletes both), read by its key's
 * range for the window (both bounds on the column itself, so both are index conditions: a
 * window months back must not read the roll-up of every later hour), summed per interned edge
 * before the edges' names are joined; every other hour of
 * the window (the ones it cuts, the ones not rolled up yet, the marked ones) from the trail, an
 * hour at a time through the key (the window prunes partitions at planning, each hour at
 * execution). One statement, so one snapshot: a record is counted from the roll-up or from the
 * trail, never both, never neither.
 */
export function graphSql(q: GraphQuery): { text: string; params: (string | number)[] } {
  const limit = Math.min(q.limit ?? DEFAULT_GRAPH_EDGES, MAX_GRAPH_EDGES);
  const rawHour = rawEdges(
    "d",
    `generate_series(date_trunc('hour', $1::timestamptz, 'UTC'), $2::timestamptz, interval '1 hour') AS h(hour)
         CROSS JOIN LATERAL (
           SELECT * FROM ${SCHEMA}.decisions x
            WHERE x.ts >= greatest(h.hour, $1::timestamptz) AND x.ts < least(h.hour + interval '1 hour', $2::timestamptz)
              AND x.ts >= $1::timestamptz AND x.ts < $2::timestamptz AND x.source_spiffe_id IS NOT NULL) AS d
        WHERE h.hour < $2::timestamptz AND NOT EXISTS (SELECT 1 FROM served s WHERE s.hour = h.hour)`,
  );
  const text = `WITH served AS MATERIALIZED (
       SELECT r.hour FROM ${SCHEMA}.graph_rolled_hours r
        WHERE r.hour >= $1::timestamptz AND r.hour <= $2::timestamptz - interval '1 hour'
          AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.graph_late_hours l WHERE l.hour = r.hour))
     ${topEdges(`SELECT e.source, e.destination, e.port, a.allow, a.deny, a.observed_deny, a.first_seen, a.last_seen
         FROM (SELECT g.edge_id, sum(g.allow) AS allow, sum(g.deny) AS deny, sum(g.observed_deny) AS observed_deny,
                      min(g.first_seen) AS first_seen, max(g.last_seen) AS last_seen
                 FROM ${SCHEMA}.graph_hours g
                WHERE g.hour >= $1::timestamptz AND g.hour <= $2::timestamptz - interval '1 hour'
                  AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.graph_late_hours l WHERE l.hour = g.hour)
                GROUP BY g.edge_id) AS a
         JOIN ${SCHEMA}.graph_edges e ON e.edge_id = a.edge_id
       UNION ALL
       ${rawHour}`)}`;
  return { text, params: [q.since.toISOString(), q.until.toISOString(), limit] };
}

/**
 * The `limit` busiest edges of the window (by decisions), in (source, destination, port)
 * order. Anyone who may call evaluate can add edges (random source IDs), so the answer is
 * bounded: PostgreSQL groups the window's edges (graphSql: rolled-up hours and the trail's rows
 * for the rest) and keeps the top `limit` groups with a bounded sort; count(*) OVER () tells how
 * many there were. `query`: graphRawSql is the reference the tests compare with.
 */
export async function buildGraph(sql: Sql, q: GraphQuery, query: (q: GraphQuery) => { text: string; params: (string | number)[] } = graphSql): Promise<Graph> {
  const limit = Math.min(q.limit ?? DEFAULT_GRAPH_EDGES, MAX_GRAPH_EDGES);
  const { text, params } = query(q);
  // Planned per request with its window (unlike GET /v1/audit's generic plans): the planner
  // then prunes to the window's few partitions itself, which costs less than a generic plan's
  // locking of every partition and pruning at execution.
  const rows = await sql.unsafe<
    { source: string; destination: string; port: number; allow: string; deny: string; observed_deny: string; first_seen: Date; last_seen: Date; total: string }[]
  >(text, params);
  const ids = new Set<string>();
  const edges: GraphEdge[] = rows.map((r) => {
    ids.add(r.source);
    ids.add(r.destination);
    return {
      source: r.source,
      destination: r.destination,
      port: r.port,
      allow: Number(r.allow),
      deny: Number(r.deny),
      observed_deny: Number(r.observed_deny),
      first_seen: r.first_seen.toISOString(),
      last_seen: r.last_seen.toISOString(),
    };
  });
  const total = rows.length === 0 ? 0 : Number(rows[0]!.total);
  return {
    since: q.since.toISOString(),
    until: q.until.toISOString(),
    nodes: [...ids].sort().map(nodeFor),
    edges,
    limit,
    total_edges: total,
    truncated: total > edges.length,
  };
}

function dotString(s: string): string {
  return '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") + '"';
}

export interface DotOptions {
  /** A link for each edge (the console: its decisions in the audit browser); Graphviz makes the edge an `<a>` in SVG. */
  edgeHref?: (e: GraphEdge) => string;
}

/** Graphviz: enforced denies red, observe-only denies dashed orange, allow-only edges black. */
export function graphToDot(g: Graph, opts: DotOptions = {}): string {
  const out: string[] = [];
  out.push("digraph zt {");
  const scope = g.truncated ? ` (truncated: the ${g.edges.length} busiest of ${g.total_edges} edges)` : "";
  out.push(`  label=${dotString(`ZT service graph ${g.since} .. ${g.until}${scope}`)};`);
  out.push("  rankdir=LR;");
  out.push("  node [shape=box, fontname=Helvetica];");
  out.push("  edge [fontname=Helvetica];");
  for (const n of g.nodes) {
    const label = n.service_account !== null ? `${n.namespace}/${n.service_account}\n${n.cluster} (${n.trust_domain})` : n.id;
    out.push(`  ${dotString(n.id)} [label=${dotString(label)}];`);
  }
  for (const e of g.edges) {
    const enforcedDeny = e.deny - e.observed_deny;
    let label = `:${e.port} allow ${e.allow}`;
    if (e.deny > 0) label += ` deny ${e.deny}`;
    if (e.observed_deny > 0) label += ` (observed ${e.observed_deny})`;
    const attrs = [`label=${dotString(label)}`];
    if (enforcedDeny > 0) attrs.push("color=red");
    else if (e.observed_deny > 0) attrs.push("color=orange", "style=dashed");
    if (opts.edgeHref) attrs.push(`href=${dotString(opts.edgeHref(e))}`, `tooltip=${dotString(`${e.source} -> ${e.destination}${label}`)}`);
    out.push(`  ${dotString(e.source)} -> ${dotString(e.destination)} [${attrs.join(", ")}];`);
  }
  out.push("}");
  return out.join("\n") + "\n";
}
