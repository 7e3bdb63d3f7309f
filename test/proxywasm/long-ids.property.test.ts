// IDs around the SPIFFE limit of 2,048 bytes, with multi-byte characters (issue 27, finding
// 5): the engine's PolicyRuntime and the filter must refuse the same IDs. The runtime used
// to write at most 2,049 bytes of whole characters, so a 2,051-byte ID ending in "€" became
// its valid 2,048-byte prefix and was allowed, while the filter (which reads the SAN's exact
// bytes) denied it. fast-check generates IDs whose byte length straddles the limit, with
// 2-, 3- and 4-byte characters at the end or inside, as caller and as callee, and compares
// the reason, the rule and whether the decision was enforced (the rollout of the callee).
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REASON_NAMES } from "../../compiler/model.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { ProxyWasmHost, type Plugin } from "./harness.js";
import { buildModule, startIngestServer, type IngestServer } from "./fixtures.js";

const TOKEN = "long-ids-token";
const POLICY = `
apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: long
spec:
  rules:
    - from:
        spiffe: "spiffe://a.org/**"
      to:
        - spiffe: "spiffe://b.org/**"
          ports: ["1-100"]
  rollout:
    - destination: "spiffe://b.org/obs/**"
      mode: observe
  defaultAction: DENY
`;

const MULTI = ["é", "€", "𝄞", "ß", "中"];

/** An ID of the given trust domain whose ASCII part is `ascii` bytes, with optional non-ASCII inserted. */
const longId = (domain: string): fc.Arbitrary<string> =>
  fc
    .record({
      ascii: fc.integer({ min: 2030, max: 2062 }),
      seg: fc.integer({ min: 1, max: 300 }),
      multi: fc.option(fc.constantFrom(...MULTI), { nil: undefined, freq: 2 }),
      at: fc.constantFrom("end", "inside"),
    })
    .map(({ ascii, seg, multi, at }) => {
      const head = `spiffe://${domain}/`;
      let body = "";
      while (head.length + body.length < ascii) body += (body.length > 0 && body.length % (seg + 1) === seg ? "/" : "s");
      if (body.endsWith("/")) body = body.slice(0, -1) + "t";
      if (multi === undefined) return head + body;
      if (at === "end") return head + body + multi;
      const cut = Math.max(1, body.length - 40);
      return head + body.slice(0, cut) + multi + body.slice(cut);
    });

const shortSrc = fc.constantFrom("spiffe://a.org/x", "spiffe://a.org/x/y");
const shortDst = fc.constantFrom("spiffe://b.org/svc", "spiffe://b.org/obs/svc");

let server: IngestServer;
let rt: PolicyRuntime;
let host: ProxyWasmHost;
let plugin: Plugin;

beforeAll(async () => {
  server = await startIngestServer(TOKEN);
  const wasm = buildModule(POLICY).wasm;
  rt = await PolicyRuntime.load(wasm);
  host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: server.url }, canary: false });
  plugin = host.startPlugin({
    name: "zt",
    rootId: "zt",
    configuration: JSON.stringify({ mode: "enforce", ingest_cluster: "zt_engine", ingest_token: TOKEN, max_batch_records: 5000 }),
  });
});

afterAll(async () => {
  await server.close();
});

describe("IDs around 2,048 bytes: runtime vs filter", () => {
  it("the runtime refuses the over-long IDs the filter refuses (a 2,051-byte ID ending in € is invalid_request)", () => {
    const id = "spiffe://a.org/" + "s".repeat(2048 - 15) + "€";
    expect(Buffer.byteLength(id)).toBe(2051);
    const v = rt.evaluateService({ source: id, destination: "spiffe://b.org/svc", port: 5 });
    expect(REASON_NAMES[v.reason]).toBe("invalid_request");
    expect(v.allow).toBe(false);
    // The destination's rollout still applies, as in the filter.
    expect(rt.evaluateService({ source: id, destination: "spiffe://b.org/obs/svc", port: 5 }).rollout).toBe("observe");
  });

  it("agree on reason, rule and enforcement for generated IDs straddling the limit", async () => {
    let invalid = 0;
    let allowed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ source: longId("a.org"), destination: shortDst }),
          fc.record({ source: shortSrc, destination: longId("b.org") }),
          fc.record({ source: longId("a.org"), destination: longId("b.org") }),
        ),
        fc.integer({ min: 1, max: 120 }),
        async ({ source, destination }, port) => {
          const v = rt.evaluateService({ source, destination, port });
          const s = plugin.httpStream({
            "connection.uri_san_peer_certificate": source,
            "connection.uri_san_local_certificate": destination,
            "destination.port": BigInt(port),
          });
          const out = s.sendRequestHeaders([[":method", "GET"], [":path", "/"]], true);
          s.complete();
          const before = server.records.length;
          host.advance(1000);
          await host.dispatchHttpCalls();
          const rec = server.records[before];
          const ctx = JSON.stringify({ src: Buffer.byteLength(source), dst: Buffer.byteLength(destination), v, rec: rec && { reason: rec.reason, enforced: rec.enforced } });
          expect(rec, ctx).toBeDefined();
          expect(rec!.reason, ctx).toBe(REASON_NAMES[v.reason]);
          expect(rec!.policy_matched, ctx).toBe(rt.ruleId(v.rule));
          expect(rec!.enforced, ctx).toBe(v.rollout !== "observe");
          expect(out.localReply !== null, ctx).toBe(!v.allow && v.rollout !== "observe");
          if (v.reason === 6) invalid++;
          if (v.allow) allowed++;
        },
      ),
      { numRuns: 400 },
    );
    expect(host.failed).toBe(false);
    expect(invalid).toBeGreaterThan(50);
    expect(allowed).toBeGreaterThan(10);
  });
});
