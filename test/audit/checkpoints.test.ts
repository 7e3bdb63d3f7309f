// Signed checkpoints on a running engine (real HTTP, real PostgreSQL, a real HTTP witness):
// the API serves the public key and the newest checkpoint, each checkpoint also reaches the
// witness (and one it missed while down is delivered later), `zt audit verify` accepts the
// witness as its checkpoint source, and the metrics the alert rules use are set. Also the
// acknowledged-then-lost ingest case of issue 25: a day dropped by retention while the writer
// believed its partition existed.
import { execFile, execFileSync } from "node:child_process";
import { createPublicKey, verify as verifySignature } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkpointBytes, type SignedCheckpoint } from "../../host/audit/checkpoint.js";
import { auditConfigFromEnv, openAudit, type Audit } from "../../host/audit/index.js";
import { runRetention } from "../../host/audit/maintenance.js";
import { call, startTestEngine, type TestEngine, TOKEN } from "../http/harness.js";
import { parseMetrics, value, type Sample } from "../metrics/metrics-text.js";
import { serviceRecord } from "./helpers.js";

/** A checkpoint witness: keeps what is POSTed, lists it on GET; can be told to refuse. */
class Witness {
  readonly received: unknown[] = [];
  refusing = false;
  private server!: Server;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ checkpoints: this.received }));
        return;
      }
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        if (this.refusing) return void res.writeHead(503).end();
        this.received.push(JSON.parse(body));
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    const a = this.server.address();
    this.url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}/checkpoints`;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

const witness = new Witness();
let e: TestEngine;
let audit: Audit;

beforeAll(async () => {
  await witness.start();
  e = await startTestEngine({
    audit: async (dir) =>
      (audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data"), ZT_AUDIT_CHECKPOINT_URL: witness.url, ZT_AUDIT_CHECKPOINT_SECONDS: "3600" }))),
  });
});

afterAll(async () => {
  await e?.dispose();
  await witness?.stop();
});

async function settled(): Promise<void> {
  await audit.sink.flush();
  while (audit.sink.status().queued > 0) await new Promise((r) => setTimeout(r, 10));
}

async function metrics(): Promise<Sample[]> {
  return parseMetrics(await (await fetch(e.url + "/metrics")).text()).samples;
}

describe("checkpoints on a running engine", () => {
  it("the API serves the public key and the newest checkpoint, signed by it, declaring the engine's chain", async () => {
    const key = await call<{ algorithm: string; key_id: string; public_key_pem: string }>(e.url, "GET", "/v1/audit/checkpoint/key", { token: TOKEN });
    expect(key.status).toBe(200);
    expect(key.body).toMatchObject({ algorithm: "Ed25519", key_id: audit.checkpoints.keyId });
    expect(key.body.public_key_pem).not.toMatch(/PRIVATE/);
    expect((await call(e.url, "GET", "/v1/audit/checkpoint/key")).status).toBe(401);

    const latest = await call<SignedCheckpoint>(e.url, "GET", "/v1/audit/checkpoint", { token: TOKEN });
    expect(latest.status).toBe(200);
    const c = latest.body.checkpoint;
    expect(c).toMatchObject({ format: "zt-audit-checkpoint/1", n: 1, prev: null, full: true, key_id: key.body.key_id });
    expect(c.chains).toEqual([expect.objectContaining({ chain_id: audit.sink.head().chain_id, seq: 0, closed: false })]);
    const pub = createPublicKey(key.body.public_key_pem);
    expect(verifySignature(null, checkpointBytes(c), pub, Buffer.from(latest.body.signature, "base64"))).toBe(true);
  });

  it("each checkpoint reaches the witness; one missed while it was down is delivered later, in order", async () => {
    for (let i = 0; i < 20; i++) audit.sink.append(serviceRecord());
    await settled();
    witness.refusing = true;
    await audit.sink.checkpoint();
    for (let i = 0; i < 20; i++) audit.sink.append(serviceRecord());
    await settled();
    // Stored in the directory all the same; the witness failure is counted.
    while (value(await metrics(), "zt_audit_checkpoint_failures_total", { sink: "witness" }) === 0) await new Promise((r) => setTimeout(r, 20));
    witness.refusing = false;
    await audit.sink.checkpoint();
    for (;;) {
      const ns = witness.received.map((s) => (s as SignedCheckpoint).checkpoint.n);
      if (ns.length >= 3) {
        expect(ns).toEqual([1, 2, 3]);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const last = witness.received[2] as SignedCheckpoint;
    expect(last.checkpoint.chains.find((x) => x.chain_id === audit.sink.head().chain_id)?.seq).toBe(40);
  });

  it("zt audit verify takes the witness as its checkpoint source (exit 0)", async () => {
    // Asynchronously: the witness answers from this process.
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      execFile(
        process.execPath,
        ["dist/host/cli/main.js", "audit", "verify", "--dsn", audit.connections.engine, "--checkpoints", witness.url, "--public-key", join(e.dataDir, "audit-checkpoint-key.pem"), "--format", "json"],
        { encoding: "utf8", env: { PATH: process.env.PATH ?? "" } },
        (err, out, errOut) => resolve({ stdout: out, stderr: errOut, code: err ? ((err as { code?: number }).code ?? null) : 0 }),
      );
    });
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, checkpoints: { writers: 1, checkpoints: 3 } });
  });

  it("metrics: the newest checkpoint's age, checkpoints written, failures by sink; promtool accepts them", async () => {
    const text = await (await fetch(e.url + "/metrics")).text();
    const m = parseMetrics(text).samples;
    expect(value(m, "zt_audit_checkpoint_age_seconds")).toBeLessThan(3600);
    expect(value(m, "zt_audit_checkpoints_total")).toBeGreaterThanOrEqual(3);
    expect(value(m, "zt_audit_checkpoint_failures_total", { sink: "directory" })).toBe(0);
    expect(execFileSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" }).trim()).toBe("");
  });
});

describe("acknowledged, then lost (issue 25 point 5)", () => {
  const ingest = (records: unknown[]) => call<{ accepted?: number; error?: { path: string; message: string } }>(e.url, "POST", "/v1/audit/ingest", { token: TOKEN, body: { records } });

  it("a record older than any partition retention may have dropped is refused at ingest, with the reason", async () => {
    const old = serviceRecord({ timestamp: new Date(Date.now() - 10 * 86_400_000).toISOString() });
    const r = await ingest([serviceRecord(), old]);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ path: "$.records[1].timestamp", message: expect.stringMatching(/more than 7 days old/) });
  });

  it("records for a day retention dropped while the writer knew its partition are stored, not set aside", async () => {
    const day = new Date(Date.now() - 2 * 86_400_000).toISOString();
    const first = Array.from({ length: 3 }, () => ({ ...serviceRecord({ timestamp: day }), origin: "sidecar/node-1" }));
    expect((await ingest(first)).body).toEqual({ accepted: 3 });
    // Retention (here: one day) drops that day's partition; the writer still has it in mind.
    const maint = postgres(audit.connections.maintenance as string, { max: 1, onnotice: () => undefined });
    try {
      const dropped = (await runRetention(maint, 1)).dropped.map((d) => d.partition);
      expect(dropped).toContain(`decisions_y${day.slice(0, 4)}m${day.slice(5, 7)}d${day.slice(8, 10)}`);
    } finally {
      await maint.end();
    }
    const later = Array.from({ length: 3 }, () => ({ ...serviceRecord({ timestamp: day }), origin: "sidecar/node-1" }));
    expect((await ingest(later)).body).toEqual({ accepted: 3 });
    await settled();
    const rows = await audit.query`SELECT decision_id::text AS id FROM zt_audit.decisions WHERE decision_id = ANY(${"{" + later.map((r) => r.decision_id).join(",") + "}"}::uuid[])`;
    expect(rows).toHaveLength(3);
    expect(audit.sink.counters.rejected).toBe(0);
    expect(existsSync(join(e.dataDir, "spool", "rejected.jsonl"))).toBe(false);
    // The first three left with the partition, as retention records; the rest of the trail is intact.
    const { verifyChains } = await import("../../host/audit/verify.js");
    const v = await verifyChains(audit.query, { retentionDays: 1 });
    expect(v.broken).toEqual([]);
    expect(v.retention_gaps).toBeGreaterThanOrEqual(1);
  });
});
