// The filter's side of the policy sync, answer by answer (answers delivered by the test,
// no network): the long poll it keeps in flight, a new image verified and installed between
// callbacks, every kind of bad image refused with the old one deciding, failures backed
// off, the image's age, the version on every record, and memory flat over 1,000 swaps.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { REASON_NAMES } from "../../compiler/model.js";
import { extractImage } from "../../host/engine/policy-image.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { policyTexts, serviceRequest, setFromTexts } from "../support/policy-arbitraries.js";
import { generateRules, policyYaml } from "../../bench/policy-gen.js";
import { ProxyWasmHost } from "./harness.js";
import { CHAT, CORE_POLICY, GET, IAM, mtlsProperties, POSTGRES, startIngestServer } from "./fixtures.js";
import { header, imageAnswer, pendingPoll, servedImage, sha256Hex, syncPlugin, type ServedImage } from "./sync-fixtures.js";

/** CORE_POLICY plus chat -> postgres: the decision that tells the images apart. */
const CHAT_TO_POSTGRES = `
apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: chat-db
spec:
  rules:
    - name: chat-reads
      from:
        spiffe: "${CHAT}"
      to:
        - spiffe: "${POSTGRES}"
          ports: [5432]
  defaultAction: DENY
`;

let v0: ServedImage;
let v1: ServedImage;

beforeAll(() => {
  v0 = servedImage(CORE_POLICY);
  v1 = servedImage(CORE_POLICY, CHAT_TO_POSTGRES);
});

/** Does this VM let chat reach postgres right now? */
function chatAllowed(host: ProxyWasmHost): boolean {
  const p = [...host.vm.roots.values()][0]!;
  const ctx = host.vm.newStreamContext(p, "http");
  for (const [k, v] of Object.entries(mtlsProperties(CHAT, POSTGRES, 5432))) ctx.properties.set(k, v);
  const before = host.metric("zt.filter.allow") ?? 0n;
  host.vm.ensureCreated(ctx);
  host.vm.callback("proxy_on_request_headers", ctx, [ctx.id, 2, 1]);
  host.vm.localReplies.delete(ctx.id);
  return (host.metric("zt.filter.allow") ?? 0n) > before;
}

function started(config: Record<string, unknown> = {}): ProxyWasmHost {
  const { host } = syncPlugin(v0.wasm, { policy_version: v0.version, ingest_token: "tok", ...config });
  host.advance(1000); // the first tick starts the poll
  return host;
}

describe("policy sync in the filter", () => {
  it("keeps one long poll in flight with If-None-Match = the version it decides with", () => {
    const host = started({ sync_wait_ms: 20000 });
    const poll = pendingPoll(host)!;
    expect(poll).toBeDefined();
    expect(host.pendingHttpCalls()).toHaveLength(1);
    expect(header(poll, ":method")).toBe("GET");
    expect(header(poll, ":path")).toBe("/v1/policy-image?wait=20");
    expect(header(poll, ":authority")).toBe("zt_engine");
    expect(header(poll, "authorization")).toBe("Bearer tok");
    expect(header(poll, "if-none-match")).toBe(`"${v0.version}"`);
    expect(header(poll, "accept-encoding")).toBeUndefined();
    expect(poll.timeoutMs).toBe(35000);
    // Ticks do not start a second one.
    host.advance(5000);
    expect(host.pendingHttpCalls()).toHaveLength(1);
    // 304: polls again at once.
    host.respondHttpCall(poll.token, { status: 304 });
    const next = pendingPoll(host)!;
    expect(next.token).not.toBe(poll.token);
    expect(host.pendingHttpCalls()).toHaveLength(1);
  });

  it("installs a new image between callbacks: decisions follow it, the next poll names it", () => {
    const host = started();
    expect(chatAllowed(host)).toBe(false);
    host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(v1));
    expect(chatAllowed(host)).toBe(true);
    expect(host.metric("zt.sync.swaps")).toBe(1n);
    expect(header(pendingPoll(host)!, "if-none-match")).toBe(`"${v1.version}"`);
    expect(host.vm.logs.some((l) => l.level === 2 && l.message === `zt: policy image installed: ${v1.version}`)).toBe(true);
    // And back: the other slot is reused.
    host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(v0));
    expect(chatAllowed(host)).toBe(false);
    expect(host.metric("zt.sync.swaps")).toBe(2n);
  });

  it("a 200 with the version it already has changes nothing", () => {
    const host = started();
    host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(v0, [["x-zt-image-sha256", "00".repeat(32)]]));
    expect(host.metric("zt.sync.swaps")).toBe(0n);
    expect(host.metric("zt.sync.refused")).toBe(0n);
  });

  const refusals: Array<[string, () => { status: number; headers: Array<[string, string]>; body: Uint8Array }, RegExp]> = [
    [
      "a tampered image (body changed, header digest kept)",
      () => {
        const body = Uint8Array.from(v1.bytes);
        body[body.length - 1] ^= 0x01;
        return { ...imageAnswer(v1), body };
      },
      /sha256 differs from the digest the engine announced/,
    ],
    [
      "an image of an unknown format version (digest matching)",
      () => {
        const body = Uint8Array.from(v1.bytes);
        new DataView(body.buffer).setUint32(4, 99, true);
        return imageAnswer({ version: v1.version, bytes: body, sha256: sha256Hex(body) });
      },
      /format this evaluator does not read/,
    ],
    [
      "a truncated image",
      () => {
        const body = v1.bytes.slice(0, v1.bytes.length - 16);
        return imageAnswer({ version: v1.version, bytes: body, sha256: sha256Hex(body) });
      },
      /length differs/,
    ],
    [
      "an image whose table points outside itself (digest matching)",
      () => {
        const body = Uint8Array.from(v1.bytes);
        const dv = new DataView(body.buffer);
        // The first node's star child: a node that does not exist.
        dv.setUint32(dv.getUint32(12, true) + 0, dv.getUint32(8, true) + 5, true);
        return imageAnswer({ version: v1.version, bytes: body, sha256: sha256Hex(body) });
      },
      /index points outside its table/,
    ],
    ["an image that is not one", () => imageAnswer({ version: v1.version, bytes: new TextEncoder().encode("<html>proxy error</html>".padEnd(200)), sha256: sha256Hex(new TextEncoder().encode("<html>proxy error</html>".padEnd(200))) }), /not a ZT policy image/],
    ["an answer without a digest", () => ({ status: 200, headers: [["x-zt-policy-version", v1.version]], body: v1.bytes }), /x-zt-image-sha256/],
    ["a compressed answer", () => imageAnswer(v1, [["content-encoding", "gzip"]]), /compressed/],
    ["a version header with a quote", () => imageAnswer(v1, [["x-zt-policy-version", 'sha256:"x']]), /x-zt-policy-version/],
  ];

  for (const [what, answer, why] of refusals) {
    it(`refuses ${what}: logged, counted, the old image keeps deciding`, () => {
      const host = started();
      host.respondHttpCall(pendingPoll(host)!.token, answer());
      expect(chatAllowed(host)).toBe(false);
      expect(host.metric("zt.sync.refused")).toBe(1n);
      expect(host.metric("zt.sync.swaps")).toBe(0n);
      const line = host.vm.logs.find((l) => l.level === 4 && /policy image refused/.test(l.message));
      expect(line?.message).toMatch(why);
      expect(host.failed).toBe(false);
      // The next poll holds the refused version back, so the engine waits instead of resending it.
      const inm = header(pendingPoll(host)!, "if-none-match")!;
      expect(inm.startsWith(`"${v0.version}"`)).toBe(true);
      // A good image afterwards is installed.
      host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(v1));
      expect(chatAllowed(host)).toBe(true);
    });
  }

  it("refuses an image larger than sync_max_image_bytes", () => {
    const host = started({ sync_max_image_bytes: 65536 });
    const big = servedImage(policyYaml(generateRules(1000)));
    expect(big.bytes.length).toBeGreaterThan(65536);
    host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(big));
    expect(host.metric("zt.sync.refused")).toBe(1n);
    expect(host.vm.logs.some((l) => /larger than sync_max_image_bytes/.test(l.message))).toBe(true);
  });

  it("fails static: an unreachable engine leaves the image deciding, retries back off, the image's age grows", () => {
    const host = started({ sync_retry_ms: 1000, sync_retry_max_ms: 8000 });
    host.respondHttpCall(pendingPoll(host)!.token, { status: 304 });
    expect(host.metric("zt.sync.image_age_seconds")).toBe(0n);
    const polledAt: number[] = [];
    for (let t = 0; t < 60_000; t += 1000) {
      const p = pendingPoll(host);
      if (p) {
        polledAt.push(t);
        host.respondHttpCall(p.token, "failure");
      }
      host.advance(1000);
    }
    expect(chatAllowed(host)).toBe(false);
    const gaps = polledAt.slice(1).map((v, i) => v - polledAt[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(9000);
    expect(gaps.at(-1)!).toBeGreaterThanOrEqual(4000);
    expect(host.metric("zt.sync.failures")).toBe(BigInt(polledAt.length));
    expect(Number(host.metric("zt.sync.image_age_seconds"))).toBeGreaterThanOrEqual(55);
    // The engine is back: the next answer resets the age and the backoff.
    host.advance(10_000);
    host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(v1));
    expect(chatAllowed(host)).toBe(true);
    expect(host.metric("zt.sync.image_age_seconds")).toBe(0n);
    expect(pendingPoll(host)).toBeDefined();
  });

  it("every record carries the version that decided it, and the rule of that version", async () => {
    const server = await startIngestServer("tok");
    try {
      const host = ProxyWasmHost.load(v0.wasm, { clusters: { zt_engine: server.url }, canary: false });
      const p = host.startPlugin({
        name: "zt",
        rootId: "zt",
        configuration: JSON.stringify({ sync_cluster: "zt_engine", ingest_cluster: "zt_engine", ingest_token: "tok", policy_version: v0.version, flush_interval_ms: 60000 }),
      });
      p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
      p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
      host.advance(1000); // first sync tick (the flush is not due yet)
      host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(v1));
      p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
      host.advance(60_000);
      const ingest = host.pendingHttpCalls().filter((c) => header(c, ":path") === "/v1/audit/ingest");
      expect(ingest).toHaveLength(1);
      await host.dispatchHttpCalls();
      expect(server.records.map((r) => [r.policy_version, r.decision, r.policy_matched])).toEqual([
        [v0.version, "ALLOW", "hanzo-core-policy/rule-1"],
        [v0.version, "DENY", null],
        [v1.version, "ALLOW", "chat-db/chat-reads"],
      ]);
    } finally {
      await server.close();
    }
  });

  it("1,000 swaps between images of three sizes leave the module's memory flat after warm-up", () => {
    const v2 = servedImage(CORE_POLICY, policyYaml(generateRules(300)));
    const images = [v1, v2, v0, v2];
    const host = started();
    let n = 0;
    const swap = (): void => {
      const img = images[n++ % images.length]!;
      host.respondHttpCall(pendingPoll(host)!.token, imageAnswer(img));
    };
    for (let i = 0; i < 20; i++) swap();
    const warm = host.vm.memoryBytes();
    const swaps0 = host.metric("zt.sync.swaps")!;
    for (let i = 0; i < 1000; i++) swap();
    expect(host.metric("zt.sync.swaps")! - swaps0).toBe(1000n);
    expect(host.vm.memoryBytes()).toBe(warm);
    expect(host.failed).toBe(false);
  });

  it("decides exactly like the engine's runtime after every swap of a chain of generated policy sets", async () => {
    const host = started({ mode: "enforce" });
    let swaps = 0;
    let compared = 0;
    await fc.assert(
      fc.asyncProperty(policyTexts, fc.array(serviceRequest, { minLength: 12, maxLength: 12 }), async (texts, reqs) => {
        const mod = compilePolicySet(setFromTexts(texts));
        const bytes = extractImage(mod.wasm);
        host.respondHttpCall(pendingPoll(host)!.token, imageAnswer({ version: mod.version, bytes, sha256: sha256Hex(bytes) }));
        swaps++;
        const rt = await PolicyRuntime.load(mod.wasm);
        const p = [...host.vm.roots.values()][0]!;
        for (const req of reqs) {
          const props: Record<string, string | bigint> = {};
          if (req.source !== "") props["connection.uri_san_peer_certificate"] = req.source;
          if (req.destination !== "") props["connection.uri_san_local_certificate"] = req.destination;
          if (Number.isInteger(req.port)) props["destination.port"] = BigInt(req.port);
          const ctx = host.vm.newStreamContext(p, "http");
          for (const [k, v] of Object.entries(props)) ctx.properties.set(k, v);
          host.vm.ensureCreated(ctx);
          host.vm.callback("proxy_on_request_headers", ctx, [ctx.id, 2, 1]);
          const reply = host.vm.localReplies.get(ctx.id) ?? null;
          host.vm.localReplies.delete(ctx.id);
          const v = req.destination === "" ? { allow: false, reason: 8 as const, rule: -1, rollout: null } : rt.evaluateService(req);
          const enforced = v.rollout === "enforce" || v.rollout === null;
          const c = JSON.stringify({ req, v });
          expect(reply !== null, c).toBe(!v.allow && enforced);
          if (reply) {
            expect(reply.headers.find(([k]) => k === "x-zt-reason")?.[1], c).toBe(REASON_NAMES[v.reason]);
            expect(reply.headers.find(([k]) => k === "x-zt-rule")?.[1] ?? null, c).toBe(rt.ruleId(v.rule));
          }
          compared++;
        }
      }),
      { numRuns: 200 },
    );
    // Generated sets can repeat (same version: no swap); most are new.
    expect(host.metric("zt.sync.swaps")).toBeGreaterThan(BigInt(swaps / 2));
    expect(host.metric("zt.sync.refused")).toBe(0n);
    expect(compared).toBe(swaps * 12);
    expect(host.failed).toBe(false);
  });
});
