// GET /v1/policy-image at the HTTP level, against a real engine: the image with its version
// and digest, the long poll (200 at once when If-None-Match names another version, held
// then 304 when the wait ends, held then 200 when a write activates a new version, for
// every held poll), authentication like ingest, compression when asked for, and held polls
// released when the engine shuts down.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { evaluatorPath } from "../../compiler/compile.js";
import { request } from "node:http";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extractImage } from "../../host/engine/policy-image.js";
import { parseMetrics, value } from "../metrics/metrics-text.js";
import { call, startTestEngine, type TestEngine, TOKEN } from "./harness.js";

const CHAT_TO_PG = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: chat-db
spec:
  rules:
    - name: chat-reads-pg
      from:
        spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat"
      to:
        - spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres"
          ports: [5432]
  defaultAction: DENY
`;

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(async () => {
  await e?.dispose();
});

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw GET (node:http: no automatic decompression, so the encoding is seen as sent). */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Got> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers: { authorization: `Bearer ${TOKEN}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function activeVersion(): Promise<string> {
  return (await call<{ version: string }>(e.url, "GET", "/v1/policies")).body.version;
}

async function waiting(): Promise<number> {
  const { samples } = parseMetrics(await (await fetch(e.url + "/metrics")).text());
  return value(samples, "zt_policy_image_polls_waiting") ?? -1;
}

async function until(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 20));
}

describe("GET /v1/policy-image", () => {
  it("needs the same credentials as ingest", async () => {
    expect((await get(e.url, "/v1/policy-image", { authorization: "" })).status).toBe(401);
    expect((await get(e.url, "/v1/policy-image", { authorization: "Bearer wrong-token" })).status).toBe(401);
  });

  it("serves the active module's image with its version as ETag and its sha256", async () => {
    const version = await activeVersion();
    const r = await get(e.url, "/v1/policy-image");
    expect(r.status).toBe(200);
    expect(r.headers.etag).toBe(`"${version}"`);
    expect(r.headers["x-zt-policy-version"]).toBe(version);
    expect(r.headers["content-type"]).toBe("application/vnd.zt.policy-image");
    expect(r.headers["x-zt-image-format"]).toBe("3");
    expect(r.headers["content-encoding"]).toBeUndefined();
    expect(r.headers["x-zt-image-sha256"]).toBe(createHash("sha256").update(r.body).digest("hex"));
    const mod = await fetch(e.url + "/v1/module.wasm");
    const wasm = new Uint8Array(await mod.arrayBuffer());
    expect(Buffer.from(extractImage(wasm)).equals(r.body)).toBe(true);
    expect(`sha256:${createHash("sha256").update(wasm).digest("hex")}`).toBe(version);
  });

  it("answers 200 at once when If-None-Match names other versions", async () => {
    const r = await get(e.url, "/v1/policy-image?wait=300", { "if-none-match": `"sha256:${"0".repeat(64)}", W/"sha256:old"` });
    expect(r.status).toBe(200);
    expect(r.headers.etag).toBe(`"${await activeVersion()}"`);
  });

  it("holds a poll that names the active version and answers 304 when the wait ends", async () => {
    const version = await activeVersion();
    const t0 = performance.now();
    const r = await get(e.url, "/v1/policy-image?wait=1", { "if-none-match": `"${version}"` });
    expect(r.status).toBe(304);
    expect(r.headers.etag).toBe(`"${version}"`);
    expect(r.body.length).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900);
    // Prefer: wait=N (OPA's form) and a list or "*" that includes the active version hold too.
    expect((await get(e.url, "/v1/policy-image", { prefer: "wait=1", "if-none-match": `"sha256:other", "${version}"` })).status).toBe(304);
    expect((await get(e.url, "/v1/policy-image?wait=1", { "if-none-match": "*" })).status).toBe(304);
    // Without a wait it answers at once.
    expect((await get(e.url, "/v1/policy-image", { "if-none-match": `"${version}"` })).status).toBe(304);
  });

  it("refuses a bad wait with 400 naming it", async () => {
    for (const w of ["abc", "-1", "1.5", "301"]) {
      const r = await call<{ error: { code: string; path: string } }>(e.url, "GET", `/v1/policy-image?wait=${w}`, { token: TOKEN });
      expect(r.status, w).toBe(400);
      expect(r.body.error).toMatchObject({ code: "invalid_wait", path: "wait" });
    }
  });

  it("a policy write releases every held poll with the new image", async () => {
    const before = await activeVersion();
    const polls = Array.from({ length: 50 }, () => get(e.url, "/v1/policy-image?wait=120", { "if-none-match": `"${before}"` }));
    await until(async () => (await waiting()) === 50);
    const w = await call<{ version: string }>(e.url, "PUT", "/v1/policies/chat-db", { raw: CHAT_TO_PG, token: TOKEN, headers: { "content-type": "application/yaml" } });
    expect(w.status).toBe(201);
    const answers = await Promise.all(polls);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.headers.etag).toBe(`"${w.body.version}"`);
      expect(a.headers["x-zt-image-sha256"]).toBe(createHash("sha256").update(a.body).digest("hex"));
    }
    expect(await waiting()).toBe(0);
    const { samples } = parseMetrics(await (await fetch(e.url + "/metrics")).text());
    expect(value(samples, "zt_policy_image_responses_total", { status: "200" })).toBeGreaterThanOrEqual(50);
    expect(value(samples, "zt_policy_image_responses_total", { status: "304" })).toBeGreaterThanOrEqual(4);
    await call(e.url, "DELETE", "/v1/policies/chat-db", { token: TOKEN });
  });

  it("a poll whose client hangs up stops being held", async () => {
    const version = await activeVersion();
    const u = new URL(e.url);
    const req = request({ host: u.hostname, port: u.port, path: "/v1/policy-image?wait=120", headers: { authorization: `Bearer ${TOKEN}`, "if-none-match": `"${version}"` } });
    req.on("error", () => undefined);
    req.end();
    await until(async () => (await waiting()) === 1);
    req.destroy();
    await until(async () => (await waiting()) === 0);
  });

  it("compresses when the client accepts it: br before gzip, identity otherwise", async () => {
    const plain = await get(e.url, "/v1/policy-image");
    const gz = await get(e.url, "/v1/policy-image", { "accept-encoding": "gzip" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers.vary).toBe("accept-encoding");
    expect(gunzipSync(gz.body).equals(plain.body)).toBe(true);
    expect(gz.body.length).toBeLessThan(plain.body.length * 0.9);
    const br = await get(e.url, "/v1/policy-image", { "accept-encoding": "gzip;q=0.5, br" });
    expect(br.headers["content-encoding"]).toBe("br");
    expect(brotliDecompressSync(br.body).equals(plain.body)).toBe(true);
    expect((await get(e.url, "/v1/policy-image", { "accept-encoding": "br;q=0, gzip;q=0" })).headers["content-encoding"]).toBeUndefined();
    // The digest is the image's, whatever the encoding.
    expect(gz.headers["x-zt-image-sha256"]).toBe(plain.headers["x-zt-image-sha256"]);
  });
});

describe("GET /v1/filter.wasm", () => {
  it("serves the filter without a policy image; its sha256 holds across policy writes", async () => {
    const a = await get(e.url, "/v1/filter.wasm", { authorization: "" });
    expect(a.status).toBe(200);
    expect(a.headers["content-type"]).toBe("application/wasm");
    const sha = createHash("sha256").update(a.body).digest("hex");
    expect(a.headers["x-zt-module-sha256"]).toBe(sha);
    expect(a.body.equals(readFileSync(evaluatorPath()))).toBe(true);
    expect(WebAssembly.Module.customSections(new WebAssembly.Module(new Uint8Array(a.body)), "zt.manifest")).toHaveLength(0);
    await call(e.url, "PUT", "/v1/policies/chat-db", { raw: CHAT_TO_PG, token: TOKEN, headers: { "content-type": "application/yaml" } });
    const b = await get(e.url, "/v1/filter.wasm", { "if-none-match": `"sha256:${sha}"` });
    expect(b.status).toBe(304);
    await call(e.url, "DELETE", "/v1/policies/chat-db", { token: TOKEN });
  });
});

describe("several replicas", () => {
  it("a change every replica sees (a policy file in the shared policy path) releases the held polls on each of them", async () => {
    // Two engines on one policy directory: whatever activates the new version on a replica
    // (here its file watch; with a shared store, its change feed) releases that replica's polls.
    const a = await startTestEngine();
    const b = await startTestEngine({ seedPolicies: false, env: { ZT_POLICY_PATH: a.policyDir } });
    try {
      const version = (await call<{ version: string }>(a.url, "GET", "/v1/policies")).body.version;
      expect((await call<{ version: string }>(b.url, "GET", "/v1/policies")).body.version).toBe(version);
      const held = [a, b].flatMap((r) => Array.from({ length: 5 }, () => get(r.url, "/v1/policy-image?wait=120", { "if-none-match": `"${version}"` })));
      for (const r of [a, b]) {
        await until(async () => {
          const { samples } = parseMetrics(await (await fetch(r.url + "/metrics")).text());
          return value(samples, "zt_policy_image_polls_waiting") === 5;
        });
      }
      writeFileSync(join(a.policyDir, "chat-db.yaml"), CHAT_TO_PG);
      const answers = await Promise.all(held);
      const versions = new Set(answers.map((x) => x.headers.etag));
      expect(answers.every((x) => x.status === 200)).toBe(true);
      expect(versions.size).toBe(1);
      expect([...versions][0]).not.toBe(`"${version}"`);
    } finally {
      await b.dispose();
      await a.dispose();
    }
  });
});

describe("shutdown", () => {
  it("answers held polls 304 at once instead of holding the drain", async () => {
    const other = await startTestEngine();
    try {
      const version = (await call<{ version: string }>(other.url, "GET", "/v1/policies")).body.version;
      const polls = Array.from({ length: 5 }, () => get(other.url, "/v1/policy-image?wait=300", { "if-none-match": `"${version}"` }));
      await until(async () => {
        const { samples } = parseMetrics(await (await fetch(other.url + "/metrics")).text());
        return value(samples, "zt_policy_image_polls_waiting") === 5;
      });
      const closing = other.close();
      for (const p of await Promise.all(polls)) expect(p.status).toBe(304);
      await closing;
    } finally {
      await other.dispose();
    }
  });
});
