// A batch the engine committed but whose answer was lost is sent again with the same
// decision ids, so the audit trail stores each decision once (issue 27, finding 2). A real
// engine with the real audit trail (embedded PostgreSQL) sits behind a small HTTP relay
// that forwards the first ingest request, waits for the engine's 200, and tells the filter
// 503 instead: the filter must resend exactly the records it sent.
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Audit, auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { startTestEngine, type TestEngine, TOKEN } from "../http/harness.js";
import { ProxyWasmHost } from "./harness.js";
import { buildModule, CHAT, CORE_POLICY, IAM, mtlsProperties, POSTGRES } from "./fixtures.js";

let engine: TestEngine;
let audit: Audit;
let relay: Server;
let relayUrl: string;
/** Ingest bodies the relay forwarded, and what it told the filter. */
const forwarded: Array<{ ids: string[]; engineStatus: number; toldFilter: number }> = [];
let loseNext = 0;

beforeAll(async () => {
  engine = await startTestEngine({ audit: async (dir) => (audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data") }))) });
  const target = new URL(engine.url);
  relay = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        const out: Buffer[] = [];
        upRes.on("data", (c: Buffer) => out.push(c));
        upRes.on("end", () => {
          const ids = (JSON.parse(body.toString("utf8")) as { records: Array<{ decision_id: string }> }).records.map((r) => r.decision_id);
          const lose = loseNext > 0 && upRes.statusCode === 200;
          if (lose) loseNext--;
          const status = lose ? 503 : upRes.statusCode!;
          forwarded.push({ ids, engineStatus: upRes.statusCode!, toldFilter: status });
          res.writeHead(status, { "content-type": "application/json" });
          res.end(lose ? '{"error":{"code":"lost"}}' : Buffer.concat(out));
        });
      });
      up.end(body);
    });
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => relay?.close(() => r()));
  await engine?.dispose();
});

describe("resending a batch whose answer was lost", () => {
  it("carries the same decision ids, and the trail holds each decision once", async () => {
    const wasm = buildModule(CORE_POLICY).wasm;
    const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: relayUrl }, canary: false });
    const p = host.startPlugin({
      name: "zt",
      rootId: "zt",
      configuration: JSON.stringify({ ingest_cluster: "zt_engine", ingest_token: TOKEN, flush_interval_ms: 10, policy_version: `sha256:${"cd".repeat(32)}` }),
    });
    for (let i = 0; i < 25; i++) p.httpStream(mtlsProperties(i % 2 ? IAM : CHAT, POSTGRES, 5432)).sendRequestHeaders([[":method", "GET"], [":path", "/"]], true);
    loseNext = 1;
    // Tick, ship, lose the answer; then let the retry (after its backoff) go through.
    for (let round = 0; round < 200 && host.metric("zt.audit.sent") !== 25n; round++) {
      host.advance(1000);
      await host.dispatchHttpCalls();
    }
    expect(host.metric("zt.audit.sent"), JSON.stringify({ forwarded, logs: host.vm.logs.slice(-5) })).toBe(25n);
    expect(forwarded.map((f) => [f.engineStatus, f.toldFilter])).toEqual([
      [200, 503],
      [200, 200],
    ]);
    expect(forwarded[1]!.ids).toEqual(forwarded[0]!.ids);
    const ids = forwarded[0]!.ids;
    expect(new Set(ids).size).toBe(25);

    await audit.sink.flush();
    const sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
    try {
      const [row] = await sql`SELECT count(*)::int AS n, count(DISTINCT decision_id)::int AS d FROM zt_audit.decisions WHERE decision_id = ANY(${ids}::uuid[])`;
      expect(row).toEqual({ n: 25, d: 25 });
    } finally {
      await sql.end();
    }
  });
});
