// A hostile client against a real engine (issue 22): deeply nested JSON, a nested port,
// aborted uploads, invalid UTF-8, wrong content types, a 10,000-request batch next to a
// single request, and pipelined requests whose answers are never read. Every case is a 4xx
// (never a 500), refused before the expensive work, and leaves the engine serving.
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../host/common/logger.js";
import { call, type DecisionBody, H, startTestEngine, svc, type TestEngine } from "./harness.js";

interface ErrorBody {
  error: { code: string; message: string; path?: string; offset?: number };
}

const lines: Array<{ level: string; msg: string; [k: string]: unknown }> = [];
let e: TestEngine;
beforeAll(async () => {
  const log = createLogger({ level: "debug", write: (l) => void lines.push(JSON.parse(l) as (typeof lines)[number]) });
  e = await startTestEngine({ engine: { log } });
});
afterAll(async () => {
  await e?.dispose();
});

const json = { "content-type": "application/json" };
const post = (raw: string | Uint8Array, headers: Record<string, string> = json) => call<ErrorBody>(e.url, "POST", "/v1/evaluate", { raw, headers });

async function stillServing(): Promise<void> {
  const r = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
  expect(r.status).toBe(200);
  expect(r.body.decision).toBe("ALLOW");
}

/** A raw HTTP/1.1 request (what fetch will not send: partial bodies, pipelining). */
function rawRequest(path: string, body: string, extra = ""): string {
  return `POST ${path} HTTP/1.1\r\nHost: zt\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

function open(url: string): Promise<Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => resolve(s));
    s.once("error", reject);
  });
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("finding 2: deeply nested JSON is refused before it is parsed", () => {
  it("a 4 MB '[[[[…]]]]' body: 400 json_too_deep at the byte where the bound was passed", async () => {
    const n = 2_000_000 - 8;
    const r = await post("[".repeat(n) + "]".repeat(n));
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("json_too_deep");
    // Refused at the first byte past the bound: the other 3,999,9xx bytes were never parsed.
    expect(r.body.error.offset).toBeLessThan(64);
    await stillServing();
  });

  it("objects nested in an evaluate body are bounded too, and so are huge arrays", async () => {
    const deep = '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000);
    const r = await post(deep);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("json_too_deep");
    const wide = "[" + Array.from({ length: 10_001 }, () => "0").join(",") + "]";
    const w = await post(wide);
    expect(w.status).toBe(400);
    expect(w.body.error.code).toBe("batch_too_large");
  });
});

describe("finding 3: a nested port is a 400, not a 500", () => {
  const nested = (depth: number): string => "[".repeat(depth) + "1" + "]".repeat(depth);
  it("service request", async () => {
    const r = await post(`{"source":{"spiffe_id":"${H}gateway"},"destination":{"spiffe_id":"${H}postgres","port":${nested(5000)}}}`);
    expect(r.status).toBe(400);
    await stillServing();
  });
  it("agent request", async () => {
    const r = await post(`{"agent":{"token":"x.y.z"},"destination":{"spiffe_id":"${H}postgres","port":${nested(5000)}}}`);
    expect(r.status).toBe(400);
    await stillServing();
  });
});

describe("finding 5: aborted uploads are counted and logged at debug, not at error", () => {
  it("20 dropped uploads: no error line, zt_http_aborted_requests_total counts them", async () => {
    const errorsBefore = lines.filter((l) => l.level === "error").length;
    const seen = () => lines.filter((l) => /abort/i.test(JSON.stringify(l))).length;
    const seenBefore = seen();
    for (let i = 0; i < 20; i++) {
      const s = await open(e.url);
      s.write(rawRequest("/v1/evaluate", "x".repeat(100_000)).slice(0, 500));
      await tick();
      s.destroy();
    }
    while (seen() - seenBefore < 20) await tick();
    expect(lines.filter((l) => l.level === "error").length - errorsBefore).toBe(0);
    const metrics = (await call(e.url, "GET", "/metrics")).text;
    const m = /^zt_http_aborted_requests_total (\d+)/m.exec(metrics);
    expect(m, "zt_http_aborted_requests_total is exported").not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(20);
    await stillServing();
  });
});

describe("finding 6: invalid UTF-8 is refused with its byte offset, never stored as U+FFFD", () => {
  it("a 0xFF byte in pod", async () => {
    const before = e.sink!.appended;
    const head = Buffer.from(`{"source":{"spiffe_id":"${H}gateway","pod":"gw-`);
    const body = Buffer.concat([head, Buffer.from([0xff]), Buffer.from(`"},"destination":{"spiffe_id":"${H}postgres","port":5432}}`)]);
    const r = await post(body);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("invalid_utf8");
    expect(r.body.error.offset).toBe(head.length);
    expect(e.sink!.appended).toBe(before);
  });
  it("an overlong encoding and a lone surrogate encoded in UTF-8 are refused too", async () => {
    for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const head = Buffer.from(`{"source":{"spiffe_id":"${H}gateway","node":"n`);
      const r = await post(Buffer.concat([head, Buffer.from(bad), Buffer.from(`"},"destination":{"spiffe_id":"${H}postgres","port":5432}}`)]));
      expect(r.status).toBe(400);
      expect(r.body.error.offset).toBe(head.length);
    }
  });
});

describe("JSON bodies need application/json", () => {
  it("text/plain, form encoding and no type at all: 415; a utf-8 charset parameter is fine", async () => {
    const body = JSON.stringify(svc("gateway", "postgres", 5432));
    for (const ct of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1"]) {
      const r = await post(body, { "content-type": ct });
      expect(r.status, ct).toBe(415);
      expect(r.body.error.code).toBe("unsupported_media_type");
    }
    const none = await call<ErrorBody>(e.url, "POST", "/v1/evaluate", { raw: new Blob([body]) as unknown as Uint8Array });
    expect(none.status).toBe(415);
    const ok = await post(body, { "content-type": "Application/JSON; charset=UTF-8" });
    expect(ok.status).toBe(200);
  });
});

describe("a batch of 10,000 lets other requests in", () => {
  it("a single request sent while the batch is being decided is answered before the batch ends", async () => {
    const batch = JSON.stringify(Array.from({ length: 10_000 }, () => svc("gateway", "postgres", 5432)));
    const start = e.sink!.appended;
    const big = post(batch);
    while (e.sink!.appended === start) await new Promise((r) => setImmediate(r));
    const single = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("iam", "redis", 6379) });
    expect(single.status).toBe(200);
    const answered = await big;
    expect(answered.status).toBe(200);
    const ids = e.sink!.records().slice(start).map((x) => x.decision_id);
    const at = ids.indexOf(single.body.decision_id);
    // Its audit record lies among the batch's: it was decided between two slices of the batch.
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(10_000);
  });
});

describe("pipelined requests whose answers are never read", () => {
  it("the connection stops being read: only a bounded number of batches is decided until the client reads", async () => {
    const batch = JSON.stringify(Array.from({ length: 10_000 }, () => svc("gateway", "postgres", 5432)));
    const start = e.sink!.appended;
    const s = await open(e.url);
    s.pause();
    const n = 12;
    for (let i = 0; i < n; i++) s.write(rawRequest("/v1/evaluate", batch));
    // Let the engine do all it will do without the client reading.
    let last = -1;
    let stable = 0;
    while (stable < 40) {
      await tick();
      const now = e.sink!.appended;
      stable = now === last ? stable + 1 : 0;
      last = now;
    }
    // What is decided is what the kernel's socket buffers absorbed plus one answer in the
    // engine; without backpressure it is all of them.
    const decided = (e.sink!.appended - start) / 10_000;
    expect(decided).toBeLessThan(n / 2);
    // Reading again releases the connection: every answer arrives.
    let answers = 0;
    let tail = "";
    const all = new Promise<void>((resolve) => {
      s.on("data", (d: Buffer) => {
        // Status lines counted chunk by chunk (with the end of the previous chunk, for a line split between two).
        const text = tail + d.toString("latin1");
        answers += (text.match(/HTTP\/1\.1 200 /g) ?? []).length;
        tail = text.slice(-16).replace(/^.*HTTP\/1\.1 200 /s, "");
        if (answers === n && text.endsWith("]")) resolve();
      });
    });
    s.resume();
    await all;
    s.destroy();
    expect(e.sink!.appended - start).toBe(n * 10_000);
    await stillServing();
  }, 120_000);
});

describe("health stays truthful", () => {
  interface Health {
    status: string;
    event_loop: { delay_max_ms: number; delay_p99_ms: number; window_s: number } | null;
  }
  it("answers 200 while the API is refusing hostile bodies, with the event loop's delay", async () => {
    const n = 2_000_000 - 8;
    const hostile = Array.from({ length: 8 }, () => post("[".repeat(n) + "]".repeat(n)));
    const h = await call<Health>(e.healthUrl, "GET", "/healthz");
    expect(h.status).toBe(200);
    expect(h.body.event_loop).toMatchObject({ delay_max_ms: expect.any(Number), delay_p99_ms: expect.any(Number), window_s: expect.any(Number) });
    for (const r of await Promise.all(hostile)) expect(r.status).toBe(400);
  });

  it("a stuck loop gets no answer until it is free again, and then reports how long it was held", async () => {
    const asked = call<Health>(e.healthUrl, "GET", "/healthz");
    // Hold the loop the engine serves on (this process's) for 1.2 s: a kubelet probe with its
    // 1 s timeout would fail now, which is what a liveness probe is for.
    const t0 = performance.now();
    while (performance.now() - t0 < 1200);
    const h = await asked;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1200);
    expect(h.status).toBe(200);
    expect(h.body.event_loop!.delay_max_ms).toBeGreaterThanOrEqual(1000);
  });
});
