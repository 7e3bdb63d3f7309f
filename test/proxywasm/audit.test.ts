// Decisions reach the audit trail: batched by the filter, shipped on the tick with
// proxy_http_call to a real HTTP server that validates them with the engine's own ingest
// validator; what happens when the engine is unreachable, slow to recover or refuses.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyWasmHost, type Plugin } from "./harness.js";
import { buildModule, CHAT, closedPort, CORE_POLICY, IAM, mtlsProperties, POSTGRES, REDIS, startIngestServer, type IngestServer } from "./fixtures.js";

const TOKEN = "sidecar-token-123";
const VERSION = `sha256:${"ab".repeat(32)}`;
const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const GET: Array<[string, string]> = [[":method", "GET"], [":path", "/"]];

let wasm: Uint8Array;
let server: IngestServer;

beforeAll(async () => {
  wasm = buildModule(CORE_POLICY).wasm;
  server = await startIngestServer(TOKEN);
});

afterAll(async () => {
  await server.close();
});

function config(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    mode: "enforce",
    ingest_cluster: "zt_engine",
    ingest_authority: "zt.hanzo.svc:8054",
    ingest_token: TOKEN,
    flush_interval_ms: 1000,
    policy_version: VERSION,
    origin: "envoy/postgres-0",
    ...extra,
  });
}

function start(clusterUrl: string, configuration: string, startNs?: bigint): { host: ProxyWasmHost; plugin: Plugin } {
  const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: clusterUrl }, ...(startNs !== undefined ? { startNs } : {}) });
  return { host, plugin: host.startPlugin({ name: "zt", rootId: "zt", configuration }) };
}

describe("audit shipping", () => {
  it("ships every decision as a valid AuditRecord on the tick", async () => {
    server.records.length = 0;
    server.requests.length = 0;
    server.nextStatus = 202;
    // A whole-millisecond instant, so the record timestamp must equal it exactly.
    const { host, plugin: p } = start(server.url, config(), BigInt(Date.now() - 1000) * 1_000_000n);
    const startMs = Number(host.now() / 1_000_000n);
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    p.httpStream(mtlsProperties(CHAT, REDIS, 6379)).sendRequestHeaders(GET, true); // observe by rollout
    p.httpStream(mtlsProperties(null, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    p.httpStream(mtlsProperties("https://not-spiffe.example/x", POSTGRES, 5432)).sendRequestHeaders(GET, true);
    const conn = p.connection(mtlsProperties(IAM, POSTGRES, 5432));
    conn.accept();
    conn.downstreamData(new Uint8Array([1, 2, 3]));
    expect(host.pendingHttpCalls()).toHaveLength(0);

    expect(host.advance(1000)).toBe(1);
    const [call] = host.pendingHttpCalls();
    expect(call!.cluster).toBe("zt_engine");
    expect(call!.headers).toEqual(
      expect.arrayContaining([
        [":method", "POST"],
        [":path", "/v1/audit/ingest"],
        [":authority", "zt.hanzo.svc:8054"],
        ["content-type", "application/json"],
        ["authorization", `Bearer ${TOKEN}`],
      ]),
    );
    expect(await host.dispatchHttpCalls()).toBe(1);
    expect(server.requests.map((r) => r.status)).toEqual([202]);
    expect(server.records).toHaveLength(6);
    const [allow, deny, observed, plaintext, badSan, l4] = server.records;

    expect(allow).toMatchObject({
      decision: "ALLOW",
      source: { spiffe_id: IAM, pod: null, node: null },
      destination: { spiffe_id: POSTGRES, port: 5432 },
      operator: null,
      target: null,
      policy_matched: "hanzo-core-policy/rule-1",
      enforced: true,
      reason: "allowed_by_rule",
      policy_version: VERSION,
      origin: "envoy/postgres-0",
      caller: null,
    });
    expect(deny).toMatchObject({ decision: "DENY", reason: "default_deny", policy_matched: null, enforced: true, source: { spiffe_id: CHAT } });
    expect(observed).toMatchObject({
      decision: "DENY",
      reason: "denied_by_rule",
      policy_matched: "hanzo-core-policy/no-chat-to-redis",
      enforced: false,
      destination: { spiffe_id: REDIS, port: 6379 },
    });
    expect(plaintext).toMatchObject({ decision: "DENY", reason: "invalid_request", source: { spiffe_id: "spiffe://zt.invalid/unauthenticated" } });
    expect(badSan).toMatchObject({ decision: "DENY", reason: "invalid_request", source: { spiffe_id: "spiffe://zt.invalid/invalid-peer-id" } });
    expect(l4).toMatchObject({ decision: "ALLOW", destination: { spiffe_id: POSTGRES, port: 5432 } });
    for (const r of server.records) {
      expect(r.decision_id).toMatch(UUID7);
      expect(Date.parse(r.timestamp)).toBe(startMs);
      expect(r.latency_us).toBe(0); // virtual clock: no time passes inside a callback
    }
    expect(new Set(server.records.map((r) => r.decision_id)).size).toBe(6);
    expect(host.metric("zt.audit.sent")).toBe(6n);
    expect(host.metric("zt.audit.buffered")).toBe(0n);

    // Nothing new, nothing sent on the next tick.
    host.advance(1000);
    expect(host.pendingHttpCalls()).toHaveLength(0);
  });

  it("measures the decision latency with the host clock", async () => {
    server.records.length = 0;
    server.nextStatus = 202;
    const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: server.url }, clock: "real" });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: config() });
    for (let i = 0; i < 20; i++) p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    host.advance(1000);
    await host.dispatchHttpCalls();
    expect(server.records, JSON.stringify({ req: server.requests.slice(-2), logs: host.vm.logs })).toHaveLength(20);
    for (const r of server.records) expect(Math.abs(Date.parse(r.timestamp) - Date.now())).toBeLessThan(60_000);
    expect(server.records.every((r) => Number.isInteger(r.latency_us) && r.latency_us >= 0)).toBe(true);
  });

  it("keeps and retries the batch while the engine answers 503 or 401, then delivers each record once", async () => {
    server.records.length = 0;
    server.requests.length = 0;
    const { host, plugin: p } = start(server.url, config());
    for (let i = 0; i < 5; i++) p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    server.nextStatus = 503;
    host.advance(1000);
    await host.dispatchHttpCalls();
    expect(host.metric("zt.audit.flush_failed")).toBe(1n);
    expect(host.metric("zt.audit.buffered")).toBe(5n);
    // New decisions join the buffer while the engine is down.
    for (let i = 0; i < 3; i++) p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    server.nextStatus = 202;
    host.advance(1000);
    await host.dispatchHttpCalls();
    expect(server.requests.map((r) => [r.status, r.count])).toEqual([
      [503, 5],
      [202, 8],
    ]);
    expect(server.records).toHaveLength(8);
    expect(new Set(server.records.map((r) => r.decision_id)).size).toBe(8);
    expect(host.metric("zt.audit.sent")).toBe(8n);

    // A wrong token: 401 is retried (an operator fixes the secret), never dropped.
    const wrong = start(server.url, config({ ingest_token: "wrong" }));
    wrong.plugin.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    wrong.host.advance(1000);
    await wrong.host.dispatchHttpCalls();
    expect(server.requests.at(-1)!.status).toBe(401);
    expect(wrong.host.metric("zt.audit.buffered")).toBe(1n);
    expect(wrong.host.metric("zt.audit.dropped")).toBe(0n);
  });

  it("bounds the buffer when the engine is unreachable and counts what it drops", async () => {
    const { host, plugin: p } = start(await closedPort(), config({ max_buffer_records: 5 }));
    for (let i = 0; i < 8; i++) {
      const out = p.httpStream(mtlsProperties(i % 2 ? IAM : CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
      // Traffic is decided as usual: the audit path never blocks or fails a request.
      expect(out.status).toBe(i % 2 ? "Continue" : "StopAllIterationAndWatermark");
    }
    expect(host.metric("zt.audit.dropped")).toBe(3n);
    host.advance(1000);
    expect(await host.dispatchHttpCalls()).toBe(1);
    expect(host.metric("zt.audit.flush_failed")).toBe(1n);
    expect(host.metric("zt.audit.buffered")).toBe(5n);
    expect(host.vm.logs.some((l) => /audit ingest failed, will retry/.test(l.message))).toBe(true);
    expect(host.failed).toBe(false);
  });

  it("drops a batch the engine rejects as invalid (400), logging the engine's answer", async () => {
    server.records.length = 0;
    server.nextStatus = 400;
    const { host, plugin: p } = start(server.url, config());
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    host.advance(1000);
    await host.dispatchHttpCalls();
    expect(host.metric("zt.audit.dropped")).toBe(2n);
    expect(host.metric("zt.audit.buffered")).toBe(0n);
    expect(host.vm.logs.some((l) => l.level === 4 && /ingest response: .*accepted/.test(l.message))).toBe(true);
    server.nextStatus = 202;
  });

  it("counts a flush Envoy refuses (unknown cluster) and keeps the records", () => {
    const host = ProxyWasmHost.load(wasm, { clusters: {} });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: config() });
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    host.advance(1000);
    expect(host.pendingHttpCalls()).toHaveLength(0);
    expect(host.metric("zt.audit.flush_failed")).toBe(1n);
    expect(host.metric("zt.audit.buffered")).toBe(1n);
  });

  it("ships in batches of max_batch_records", async () => {
    server.records.length = 0;
    server.requests.length = 0;
    server.nextStatus = 202;
    const { host, plugin: p } = start(server.url, config({ max_batch_records: 4 }));
    for (let i = 0; i < 10; i++) p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    for (let t = 0; t < 3; t++) {
      host.advance(1000);
      await host.dispatchHttpCalls();
    }
    expect(server.requests.map((r) => r.count)).toEqual([4, 4, 2]);
    expect(server.records).toHaveLength(10);
  });

  it("flushes what it holds when the plugin is removed, then calls proxy_done", async () => {
    server.records.length = 0;
    server.nextStatus = 202;
    const { host, plugin: p } = start(server.url, config());
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    expect(p.shutdown()).toBe("pending");
    expect(p.deleted).toBe(false);
    await host.dispatchHttpCalls();
    expect(server.records).toHaveLength(2);
    expect(p.deleted).toBe(true);
    expect(host.vm.contexts.has(p.rootContextId)).toBe(false);

    // Nothing buffered: done at once.
    const idle = start(server.url, config());
    expect(idle.plugin.shutdown()).toBe("deleted");
  });

  it("ships nothing without an ingest cluster (decisions are still counted)", () => {
    const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: server.url } });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: "" });
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    host.advance(5000);
    expect(host.pendingHttpCalls()).toHaveLength(0);
    expect(host.metric("zt.filter.allow")).toBe(1n);
    expect(host.vm.logs.some((l) => /no ingest_cluster configured/.test(l.message))).toBe(true);
  });
});
