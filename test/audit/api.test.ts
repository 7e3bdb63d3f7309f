// GET /v1/audit (filters, keyset pagination), GET /v1/graph (counts, DOT) and
// POST /v1/audit/ingest (strict validation, durable acknowledgement, re-sends) against
// records written through the sink into a real PostgreSQL.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { auditRoutes } from "../../host/http/routes/audit.js";
import { ThreadedAuditSink } from "../../host/audit/threaded-sink.js";
import type { AuditRecord } from "../../host/audit/record.js";
import type { Graph } from "../../host/audit/graph.js";
import { checkpointSetup, operatorRecord, serviceRecord, tempDataDir } from "./helpers.js";

const GW = "spiffe://hanzo.ai/do-sfo3/hanzo/gateway";
const LLM = "spiffe://hanzo.ai/do-sfo3/hanzo/llm";
const DB = "spiffe://hanzo.ai/do-sfo3/data/postgres";
const CHAT = "spiffe://hanzo.ai/do-sfo3/hanzo/chat";

let dir: string;
let audit: Audit;
let app: Hono;
const t0 = Date.now() - 3 * 3600_000;
const all: AuditRecord[] = [];

function at(minute: number): string {
  return new Date(t0 + minute * 60_000).toISOString();
}

async function settle(): Promise<void> {
  await audit.sink.flush();
  while (audit.sink.status().queued > 0) await new Promise((r) => setTimeout(r, 10));
}

beforeAll(async () => {
  dir = await tempDataDir("api");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  app = auditRoutes(audit.query, audit.sink);
  let m = 0;
  const add = (r: AuditRecord): void => {
    all.push(r);
    audit.sink.append(r);
  };
  for (let i = 0; i < 5; i++) add(serviceRecord({ source: GW, destination: LLM, port: 8080, timestamp: at(m++) }));
  for (let i = 0; i < 2; i++) add(serviceRecord({ source: GW, destination: LLM, port: 8080, decision: "DENY", enforced: false, policy: null, timestamp: at(m++) }));
  for (let i = 0; i < 3; i++) add(serviceRecord({ source: GW, destination: DB, port: 5432, decision: "DENY", policy: null, timestamp: at(m++) }));
  for (let i = 0; i < 4; i++) add(serviceRecord({ source: CHAT, destination: LLM, port: 8080, policy: "chat-access/chat-to-llm", timestamp: at(m++) }));
  for (let i = 0; i < 2; i++) add({ ...operatorRecord("alice@hanzo.ai", "postgres", "connect"), timestamp: at(m++) });
  await settle();
});

afterAll(async () => {
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Page {
  records: AuditRecord[];
  next_cursor: string | null;
}

async function get(path: string): Promise<{ status: number; body: unknown }> {
  const res = await app.request(path);
  const text = await res.text();
  return { status: res.status, body: res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

async function ids(query: string): Promise<string[]> {
  const r = await get(`/v1/audit?since=${encodeURIComponent(at(0))}&limit=1000&${query}`);
  expect(r.status).toBe(200);
  return (r.body as Page).records.map((x) => x.decision_id);
}

const idsOf = (f: (r: AuditRecord) => boolean): string[] =>
  all
    .filter(f)
    .sort((a, b) => (a.timestamp === b.timestamp ? (a.decision_id < b.decision_id ? 1 : -1) : a.timestamp < b.timestamp ? 1 : -1))
    .map((r) => r.decision_id);

describe("GET /v1/audit", () => {
  it("returns seed-shaped records newest first", async () => {
    const r = await get(`/v1/audit?since=${encodeURIComponent(at(0))}&limit=1`);
    const rec = (r.body as Page).records[0]!;
    expect(rec).toEqual(all[all.length - 1]);
    expect(Object.keys(rec).sort()).toEqual(
      ["caller", "decision", "decision_id", "destination", "enforced", "latency_us", "operator", "origin", "policy_matched", "policy_version", "reason", "source", "target", "timestamp"].sort(),
    );
  });

  it("pages through everything with the cursor, each record once, in order", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/v1/audit?since=${encodeURIComponent(at(0))}&limit=5${cursor ? `&cursor=${cursor}` : ""}`;
      const r = await get(q);
      expect(r.status).toBe(200);
      const page = r.body as Page;
      expect(page.records.length).toBeLessThanOrEqual(5);
      seen.push(...page.records.map((x) => x.decision_id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(4);
    expect(seen).toEqual(idsOf(() => true));
  });

  it("filters by decision, source, destination, port, policy, subject, enforced and time", async () => {
    expect(await ids("decision=DENY")).toEqual(idsOf((r) => r.decision === "DENY"));
    expect(await ids(`source=${encodeURIComponent(GW)}`)).toEqual(idsOf((r) => r.source?.spiffe_id === GW));
    expect(await ids(`source=${encodeURIComponent("spiffe://hanzo.ai/do-sfo3/hanzo/*")}`)).toEqual(idsOf((r) => r.source !== null));
    expect(await ids(`destination=${encodeURIComponent("spiffe://hanzo.ai/**")}&port=5432`)).toEqual(idsOf((r) => r.destination?.port === 5432));
    expect(await ids(`destination=${encodeURIComponent(LLM)}&decision=deny`)).toEqual(idsOf((r) => r.destination?.spiffe_id === LLM && r.decision === "DENY"));
    expect(await ids("policy=gateway-access")).toEqual(idsOf((r) => r.policy_matched?.startsWith("gateway-access/") === true));
    expect(await ids("policy=chat-access/chat-to-llm")).toEqual(idsOf((r) => r.policy_matched === "chat-access/chat-to-llm"));
    expect(await ids("subject=alice%40hanzo.ai")).toEqual(idsOf((r) => r.operator?.subject === "alice@hanzo.ai"));
    expect(await ids("enforced=false")).toEqual(idsOf((r) => !r.enforced));
    expect(await ids(`until=${encodeURIComponent(at(5))}`)).toEqual(idsOf((r) => r.timestamp < at(5)));
  });

  it("reads every record back exactly as it was appended (operator roles included)", async () => {
    const r = await get(`/v1/audit?since=${encodeURIComponent(at(0))}&limit=1000`);
    const byId = new Map((r.body as Page).records.map((x) => [x.decision_id, x]));
    for (const rec of all) expect(byId.get(rec.decision_id)).toEqual(rec);
    expect(all.some((x) => x.operator !== null && x.operator.roles.length > 0)).toBe(true);
  });

  it("rejects bad parameters with 400 and the parameter's path", async () => {
    const cases: Array<[string, string]> = [
      ["decision=MAYBE", "query.decision"],
      ["since=yesterday", "query.since"],
      ["source=spiffe://x/a%20b", "query.source"],
      ["destination=http://x", "query.destination"],
      ["limit=0", "query.limit"],
      ["limit=1001", "query.limit"],
      ["port=99999", "query.port"],
      ["cursor=abc", "query.cursor"],
      ["colour=red", "query.colour"],
      ["decision=ALLOW&decision=DENY", "query.decision"],
    ];
    for (const [q, path] of cases) {
      const r = await get(`/v1/audit?${q}`);
      expect(r.status, q).toBe(400);
      expect((r.body as { error: { code: string; path: string } }).error).toMatchObject({ code: "invalid_request", path });
    }
  });
});

describe("GET /v1/graph", () => {
  it("counts allow, deny and observed-only deny per edge, with first and last seen", async () => {
    const r = await get(`/v1/graph?since=${encodeURIComponent(at(0))}`);
    expect(r.status).toBe(200);
    const g = r.body as Graph;
    expect(g.edges).toEqual([
      { source: CHAT, destination: LLM, port: 8080, allow: 4, deny: 0, observed_deny: 0, first_seen: at(10), last_seen: at(13) },
      { source: GW, destination: DB, port: 5432, allow: 0, deny: 3, observed_deny: 0, first_seen: at(7), last_seen: at(9) },
      { source: GW, destination: LLM, port: 8080, allow: 5, deny: 2, observed_deny: 2, first_seen: at(0), last_seen: at(6) },
    ]);
    expect(g.nodes.map((n) => n.id)).toEqual([DB, CHAT, GW, LLM]);
    expect(g.nodes.find((n) => n.id === DB)).toEqual({ id: DB, trust_domain: "hanzo.ai", cluster: "do-sfo3", namespace: "data", service_account: "postgres" });
  });

  it("renders Graphviz DOT", async () => {
    const res = await app.request(`/v1/graph?format=dot&since=${encodeURIComponent(at(0))}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/graphviz/);
    const dot = await res.text();
    expect(dot).toMatch(/^digraph zt \{/);
    expect(dot).toContain(`"${GW}" -> "${DB}" [label=":5432 allow 0 deny 3", color=red];`);
    expect(dot).toContain(`"${GW}" -> "${LLM}" [label=":8080 allow 5 deny 2 (observed 2)", color=orange, style=dashed];`);
    expect(dot).toContain(`"${DB}" [label="data/postgres\\ndo-sfo3 (hanzo.ai)"];`);
  });

  it("windows by time and rejects bad parameters", async () => {
    const g = (await get(`/v1/graph?since=${encodeURIComponent(at(10))}&until=${encodeURIComponent(at(12))}`)).body as Graph;
    expect(g.edges).toHaveLength(1);
    expect(g.edges[0]).toMatchObject({ source: CHAT, allow: 2 });
    const bad = await get("/v1/graph?format=png");
    expect(bad.status).toBe(400);
    expect((bad.body as { error: { path: string } }).error.path).toBe("query.format");
  });
});

describe("GET /v1/graph is bounded (issue 22, finding 7)", () => {
  it("?limit=N keeps the N busiest edges (by decisions) and says the answer is truncated", async () => {
    const r = await get(`/v1/graph?since=${encodeURIComponent(at(0))}&limit=2`);
    expect(r.status).toBe(200);
    const g = r.body as Graph & { truncated: boolean; total_edges: number; limit: number };
    expect(g.edges.map((e) => [e.source, e.destination, e.allow + e.deny])).toEqual([
      [CHAT, LLM, 4],
      [GW, LLM, 7],
    ]);
    expect(g.nodes.map((n) => n.id)).toEqual([CHAT, GW, LLM]);
    expect(g).toMatchObject({ truncated: true, total_edges: 3, limit: 2 });
    const all = (await get(`/v1/graph?since=${encodeURIComponent(at(0))}`)).body as Graph & { truncated: boolean; limit: number };
    expect(all).toMatchObject({ truncated: false, limit: 1000 });
    const dot = await (await app.request(`/v1/graph?format=dot&limit=1&since=${encodeURIComponent(at(0))}`)).text();
    expect(dot).toContain("truncated: the 1 busiest of 3 edges");
  });

  it("refuses a limit outside 1..10000", async () => {
    for (const l of ["0", "10001", "-1", "abc", "1e3"]) {
      const r = await get(`/v1/graph?limit=${l}`);
      expect(r.status, l).toBe(400);
      expect((r.body as { error: { path: string } }).error.path).toBe("query.limit");
    }
  });
});

describe("POST /v1/audit/ingest", () => {
  const post = (body: string): Promise<Response> => Promise.resolve(app.request("/v1/audit/ingest", { method: "POST", body, headers: { "content-type": "application/json" } }));


  it("stores sidecar records durably before answering", async () => {
    const recs = [serviceRecord({ source: CHAT, destination: DB, port: 5432 }), serviceRecord({ source: CHAT, destination: DB, port: 5432, decision: "DENY" })].map((r) => ({
      ...r,
      origin: "sidecar/node-2",
    }));
    const res = await post(JSON.stringify({ records: recs }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 2 });
    await settle();
    const got = await get(`/v1/audit?source=${encodeURIComponent(CHAT)}&destination=${encodeURIComponent(DB)}`);
    expect((got.body as Page).records.map((r) => r.origin)).toEqual(["sidecar/node-2", "sidecar/node-2"]);

    // A sidecar re-sending the same batch: stored once, the copies keep their chain position.
    const again = await post(JSON.stringify({ records: recs }));
    expect(again.status).toBe(200);
    await settle();
    const twice = await get(`/v1/audit?source=${encodeURIComponent(CHAT)}&destination=${encodeURIComponent(DB)}`);
    expect((twice.body as Page).records).toHaveLength(2);
    expect(audit.sink.counters.duplicates).toBe(2);
    expect(audit.sink.counters.conflicts).toBe(0);
    expect((await audit.verify()).ok).toBe(true);
  });

  it("rejects invalid bodies with 400 and the JSON path, storing nothing", async () => {
    const before = audit.sink.counters.written;
    const bad = { ...serviceRecord(), decision: "PERMIT" };
    const res = await post(JSON.stringify({ records: [serviceRecord(), bad] }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: "invalid_request", message: '$.records[1].decision: must be "ALLOW" or "DENY"', path: "$.records[1].decision" } });
    const notJson = await post("{records:");
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string; path: string } }).error).toMatchObject({ code: "invalid_json", path: "$" });
    const wrongShape = await post(JSON.stringify({ record: [] }));
    expect(wrongShape.status).toBe(400);
    await settle();
    expect(audit.sink.counters.written).toBe(before);
    expect(audit.sink.counters.dropped).toBe(0);
  });
});

describe("ingest backpressure", () => {
  it("a burst of sidecar batches larger than the memory bound waits for room (backpressure) instead of being refused", async () => {
    // Its own writer with a bound of 800 records, on the same PostgreSQL.
    const cp = await checkpointSetup(join(dir, "bp"));
    const sink = await ThreadedAuditSink.start(
      { dsn: audit.connections.engine, spoolDir: join(dir, "spool-bp"), writerId: "ingest-bp", onSpoolFailure: "deny", maxQueue: 800, checkpoint: cp.options },
      () => undefined,
      cp.key,
    );
    const sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
    try {
      const small = auditRoutes(sql, sink);
      const batches = Array.from({ length: 12 }, () => Array.from({ length: 100 }, () => ({ ...serviceRecord({ source: "spiffe://hanzo.ai/do-sfo3/hanzo/burst", destination: DB, port: 5432 }), origin: "sidecar/burst" })));
      const replies = await Promise.all(
        batches.map((records) => Promise.resolve(small.request("/v1/audit/ingest", { method: "POST", body: JSON.stringify({ records }), headers: { "content-type": "application/json" } }))),
      );
      expect(replies.map((r) => r.status)).toEqual(batches.map(() => 200));
      expect(sink.backpressure.admitted).toBeGreaterThan(0);
      expect(sink.counters.dropped).toBe(0);
      const ids = batches.flat().map((r) => r.decision_id);
      const [row] = await sql`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`;
      expect(row?.n).toBe(1200);
    } finally {
      await sink.close();
      await sql.end();
    }
  });
});
