// The direct path of POST /v1/evaluate (host/http/direct-evaluate.ts) against its reference,
// the Hono route: two engines on the same policies, one with the direct path and one without
// (directEvaluate: false), get the same generated requests over raw TCP (valid, invalid,
// hostile, oversized, wrong content type, bad UTF-8, bad credentials, odd request ids, chunked,
// on fresh and on kept-alive connections), and must answer byte for byte the same (status line,
// headers, body) and write the same audit records and decision counters. What differs by
// nature is masked first: the Date header, generated request ids, decision ids, timestamps
// and latencies.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { connect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../host/audit/record.js";
import { H, op, startTestEngine, svc, type TestEngine, TOKEN } from "./harness.js";

const MAX_BODY = 4096;
let direct: TestEngine;
let reference: TestEngine;
/** Answers written header by header (the direct path) rather than by writeHead with an object (@hono/node-server). */
const byPath = { direct: 0, hono: 0 };

/** Counts which path wrote each answer of `server`: only the direct path sets headers one by one. */
function countPaths(server: Server): void {
  server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
    let set = false;
    const setHeader = res.setHeader.bind(res);
    res.setHeader = (name, value) => ((set = true), setHeader(name, value));
    res.once("finish", () => void (set ? byPath.direct++ : byPath.hono++));
  });
}

beforeAll(async () => {
  const env = { ZT_MAX_BODY_BYTES: String(MAX_BODY), ZT_MAX_BATCH: "50" };
  direct = await startTestEngine({ env, state: false, engine: { onApiServer: countPaths } });
  reference = await startTestEngine({ env, state: false, engine: { directEvaluate: false } });
}, 120_000);
afterAll(async () => {
  await direct?.dispose();
  await reference?.dispose();
});

interface RawRequest {
  readonly target: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** Send the body chunked (no Content-Length). */
  readonly chunked: boolean;
  /** Send only this many bytes of the request, then close the connection (an upload the client abandons). */
  readonly cut?: number;
}

function encode(r: RawRequest, port: number): Buffer {
  const lines = [`POST ${r.target} HTTP/1.1`, `host: 127.0.0.1:${port}`];
  for (const [k, v] of r.headers) lines.push(`${k}: ${v}`);
  if (r.chunked) lines.push("transfer-encoding: chunked");
  else lines.push(`content-length: ${r.body.length}`);
  const head = Buffer.from(lines.join("\r\n") + "\r\n\r\n", "latin1");
  if (!r.chunked) return Buffer.concat([head, r.body]);
  const chunks = r.body.length === 0 ? [] : [Buffer.from(r.body.length.toString(16) + "\r\n"), r.body, Buffer.from("\r\n")];
  return Buffer.concat([head, ...chunks, Buffer.from("0\r\n\r\n")]);
}

/** Sends the requests one after another on one connection; the raw bytes of each answer. */
function exchange(port: number, requests: readonly RawRequest[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const answers: string[] = [];
    let buf = Buffer.alloc(0);
    const sendNext = (): void => {
      const r = requests[answers.length]!;
      const bytes = encode(r, port);
      if (r.cut === undefined) return void socket.write(bytes);
      // Headers complete, the body not: the server is left waiting for bytes that never come.
      socket.end(bytes.subarray(0, bytes.length - 1 - (r.cut % r.body.length)));
    };
    socket.on("connect", sendNext);
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        answers.push(buf.subarray(0, end + 4 + length).toString("latin1"));
        buf = buf.subarray(end + 4 + length);
        if (answers.length === requests.length) {
          socket.destroy();
          return resolve(answers);
        }
        if (/\r\nconnection: close/i.test(head)) {
          socket.destroy();
          return resolve(answers);
        }
        sendNext();
      }
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(answers));
  });
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const GENERATED_ID = /\b[0-9a-f]{12}-[0-9a-z]+\b/g;

/** Masks what differs by nature between two engines: dates, generated ids, decision ids, latencies (and so lengths), ports. */
function masked(text: string, port: number): string {
  return text
    .replace(/\r\ndate: [^\r]*/i, "\r\ndate: -")
    .replace(/\r\ncontent-length: \d+/i, "\r\nContent-Length: <n>")
    .replace(UUID, "<uuid>")
    .replace(GENERATED_ID, "<request-id>")
    .replace(/"latency_us":\d+/g, '"latency_us":0')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, "<time>")
    .replaceAll(String(port), "<port>");
}

function maskedRecord(r: AuditRecord): string {
  return masked(JSON.stringify({ ...r, latency_us: 0 }), -1);
}

const enc = new TextEncoder();
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v) ?? "null");

const names = fc.constantFrom("gateway", "postgres", "iam", "redis", "chat", "unknown", "");
const port = fc.oneof(fc.constantFrom(5432, 6379, 4000, 8001, 0, 65536, -1), fc.constant("5432"), fc.constant(1.5));
const service = fc.record({ src: names, dst: names, port, pod: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) }).map(({ src, dst, port, pod }) => (pod === undefined ? svc(src, dst, port as number) : svc(src, dst, port as number, { pod })));
const operator = fc.record({ roles: fc.subarray(["sre", "dev", "admin", "oncall"]), service: names, action: fc.constantFrom("read", "write", "ssh"), mfa: fc.boolean() }).map(({ roles, service, action, mfa }) => op(roles, service, action, mfa));
const agent = fc.record({ dst: names, token: fc.constantFrom("", "x.y.z", "eyJhbGciOiJub25lIn0.e30.") }).map(({ dst, token }) => ({ agent: { token }, destination: { spiffe_id: H + dst, port: 8080 } }));
const item = fc.oneof({ weight: 4, arbitrary: service }, operator, agent, fc.anything({ maxDepth: 3 }));

/** Bodies: valid and invalid requests and batches, hostile and oversized text, bad UTF-8. */
const body: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: item.map(json) },
  { weight: 2, arbitrary: fc.array(item, { minLength: 0, maxLength: 60 }).map(json) },
  fc.constantFrom("", "{", "[", "null", "[]", "{}", '{"source":', "1e999999", '"\\ud800"', "[".repeat(20) + "]".repeat(20)).map((s) => Buffer.from(s)),
  fc.integer({ min: MAX_BODY - 2, max: MAX_BODY * 3 }).map((n) => Buffer.from(JSON.stringify({ pad: "x".repeat(n) }))),
  fc.record({ at: fc.nat(), bytes: fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]) }).map(({ at, bytes }) => {
    const b = json(svc("gateway", "postgres", 5432));
    const i = at % b.length;
    return Buffer.concat([b.subarray(0, i), Buffer.from(bytes), b.subarray(i)]);
  }),
);

const contentType = fc.oneof(
  { weight: 5, arbitrary: fc.constant("application/json") },
  fc.constantFrom(null, "text/plain", "application/json; charset=utf-8", "application/json; charset=latin1", "APPLICATION/JSON", "application/x-www-form-urlencoded", "application/json\t", ""),
);
const authorization = fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, fc.constantFrom(`Bearer ${TOKEN}`, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", "", "Bearer  two spaces"));
const requestId = fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, fc.constantFrom("req-1", "a/b:c=d", "bad id with spaces", "x".repeat(129), "", "ünïcode"));

const request: fc.Arbitrary<RawRequest> = fc
  .record({
    target: fc.oneof({ weight: 8, arbitrary: fc.constant("/v1/evaluate") }, fc.constantFrom("/v1/evaluate?x=1", "/v1/evaluate/", "//v1/evaluate")),
    body,
    type: contentType,
    auth: authorization,
    id: requestId,
    chunked: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
    cut: fc.oneof({ weight: 7, arbitrary: fc.constant(undefined) }, fc.nat()),
  })
  .map(({ target, body, type, auth, id, chunked, cut }) => {
    const headers: Array<[string, string]> = [];
    if (type !== null) headers.push(["content-type", type]);
    if (auth !== null) headers.push(["authorization", auth]);
    if (id !== null) headers.push(["x-request-id", Buffer.from(enc.encode(id)).toString("latin1")]);
    return { target, headers, body, chunked, ...(cut !== undefined && body.length > 0 ? { cut } : {}) };
  });

async function decisionCounters(e: TestEngine): Promise<string[]> {
  const text = await (await fetch(`${e.url}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => /^zt_(decisions|evaluations|audit_refused|http_aborted)[a-z_]*(\{|\s)/.test(l) && !/seconds|quantile/.test(l))
    .sort();
}

describe("POST /v1/evaluate: the direct path answers exactly as the Hono route", () => {
  it("serves POST /v1/evaluate with a Content-Length, and leaves chunked bodies and other targets to Hono", async () => {
    const ok = { headers: [["content-type", "application/json"]] as Array<[string, string]>, body: json(svc("gateway", "postgres", 5432)) };
    const before = { ...byPath };
    const requests = [
      { target: "/v1/evaluate", ...ok, chunked: false },
      { target: "/v1/evaluate", ...ok, chunked: true },
      { target: "/v1/evaluate?x=1", ...ok, chunked: false },
    ];
    const answers = await exchange(direct.port, requests);
    await exchange(reference.port, requests); // the same decisions on both sides, for the counters below
    expect(answers.map((a) => a.slice(0, 15))).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
    expect({ direct: byPath.direct - before.direct, hono: byPath.hono - before.hono }).toEqual({ direct: 1, hono: 2 });
  });

  it("same status line, headers, body, audit records and counters for generated requests", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 3 }), async (requests) => {
        const before = [direct.sink!.records().length, reference.sink!.records().length];
        const [got, want] = await Promise.all([exchange(direct.port, requests), exchange(reference.port, requests)]);
        expect(got.map((t) => masked(t, direct.port))).toEqual(want.map((t) => masked(t, reference.port)));
        const newRecords = (e: TestEngine, from: number): string[] => e.sink!.records().slice(from).map(maskedRecord);
        expect(newRecords(direct, before[0]!)).toEqual(newRecords(reference, before[1]!));
      }),
      { numRuns: 150 },
    );
    const counters = await decisionCounters(direct);
    expect(counters).toEqual(await decisionCounters(reference));
    // The abandoned uploads were generated, and counted on both sides.
    expect(counters.find((l) => l.startsWith("zt_http_aborted_requests_total"))).toMatch(/ [1-9]\d*$/);
  }, 240_000);
});
