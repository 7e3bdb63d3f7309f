// The filter decides exactly like the host runtime on the same module: for generated policy
// sets (wildcards, DENY rules, port ranges, per-destination rollout) and requests, what the
// filter does (403 / closed connection / pass) and what it records in the audit trail
// (decision, reason, matched rule, enforced) equal PolicyRuntime.evaluateService's verdict
// under the documented mode rule. Requests go through the HTTP filter and the network filter
// alternately; the records travel to a real ingest server that validates them.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { REASON_NAMES, type ServiceRequest, type Verdict } from "../../compiler/model.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { policyTexts, serviceRequest, setFromTexts } from "../support/policy-arbitraries.js";
import { ProxyWasmHost } from "./harness.js";
import { startIngestServer, type IngestServer } from "./fixtures.js";

const POLICY_SETS = 400;
const REQUESTS_PER_SET = 12;
const TOKEN = "diff-token";

let server: IngestServer;

beforeAll(async () => {
  server = await startIngestServer(TOKEN);
});

afterAll(async () => {
  await server.close();
});

/** Envoy's view of a request: the peer SAN, our own SAN and destination.port (absent when not an integer). */
function properties(req: ServiceRequest): Record<string, string | bigint> {
  const p: Record<string, string | bigint> = {};
  if (req.source !== "") p["connection.uri_san_peer_certificate"] = req.source;
  if (req.destination !== "") p["connection.uri_san_local_certificate"] = req.destination;
  if (Number.isInteger(req.port)) p["destination.port"] = BigInt(req.port);
  return p;
}

/** What the filter must conclude: the runtime's verdict, except that no own identity is an internal error. */
function expected(rt: PolicyRuntime, req: ServiceRequest, mode: "enforce" | "observe"): { verdict: Verdict; enforced: boolean } {
  const verdict: Verdict = req.destination === "" ? { allow: false, reason: 8, rule: -1, rollout: null } : rt.evaluateService(req);
  const enforced = verdict.rollout === "enforce" || (verdict.rollout === null && mode === "enforce");
  return { verdict, enforced };
}

describe("filter vs host runtime (same module)", () => {
  it(`agrees on ${POLICY_SETS * REQUESTS_PER_SET} generated requests through both filters`, async () => {
    let cases = 0;
    let blocked = 0;
    let passed = 0;
    let recorded = 0;
    await fc.assert(
      fc.asyncProperty(
        policyTexts,
        fc.array(serviceRequest, { minLength: REQUESTS_PER_SET, maxLength: REQUESTS_PER_SET }),
        fc.constantFrom("enforce" as const, "observe" as const),
        async (texts, reqs, mode) => {
          const wasm = compilePolicySet(setFromTexts(texts)).wasm;
          const rt = await PolicyRuntime.load(wasm);
          const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: server.url }, canary: false });
          const plugin = host.startPlugin({
            name: "zt",
            rootId: "zt",
            configuration: JSON.stringify({ mode, ingest_cluster: "zt_engine", ingest_token: TOKEN, max_batch_records: 5000, policy_version: "sha256:test" }),
          });
          const wantRecords: Array<{ req: ServiceRequest; verdict: Verdict; enforced: boolean }> = [];
          reqs.forEach((req, i) => {
            const { verdict, enforced } = expected(rt, req, mode);
            const mustBlock = !verdict.allow && enforced;
            const ctx = JSON.stringify({ req, verdict, mode });
            if (i % 2 === 0) {
              const s = plugin.httpStream(properties(req));
              const out = s.sendRequestHeaders([[":method", "GET"], [":path", "/"]], true);
              expect(out.localReply !== null, ctx).toBe(mustBlock);
              if (out.localReply) {
                const h = new Map(out.localReply.headers);
                expect(out.localReply.status, ctx).toBe(403);
                expect(h.get("x-zt-reason"), ctx).toBe(REASON_NAMES[verdict.reason]);
                expect(h.get("x-zt-rule") ?? null, ctx).toBe(rt.ruleId(verdict.rule));
              }
              s.complete();
            } else {
              const c = plugin.connection(properties(req));
              c.accept();
              const status = c.downstreamData(new Uint8Array([0x51]));
              expect(status, ctx).toBe(mustBlock ? "StopIteration" : "Continue");
              expect(c.closedBy, ctx).toBe(mustBlock ? "filter" : null);
              if (c.open) c.remoteClose();
            }
            if (mustBlock) blocked++;
            else passed++;
            cases++;
            // The audit trail holds service requests with a real port (1-65535) only.
            if (Number.isInteger(req.port) && req.port >= 1 && req.port <= 65535) wantRecords.push({ req, verdict, enforced });
          });
          expect(host.failed).toBe(false);
          expect(host.vm.diagnostics).toEqual([]);

          const before = server.records.length;
          host.advance(1000);
          await host.dispatchHttpCalls();
          const got = server.records.slice(before);
          expect(got.length, "records shipped").toBe(wantRecords.length);
          got.forEach((rec, i) => {
            const { req, verdict, enforced } = wantRecords[i]!;
            const ctx = JSON.stringify({ req, verdict, rec });
            expect(rec.decision, ctx).toBe(verdict.allow ? "ALLOW" : "DENY");
            expect(rec.reason, ctx).toBe(REASON_NAMES[verdict.reason]);
            expect(rec.policy_matched, ctx).toBe(rt.ruleId(verdict.rule));
            expect(rec.enforced, ctx).toBe(enforced);
            expect(rec.destination?.port, ctx).toBe(req.port);
            if (verdict.reason !== 6 && verdict.reason !== 8) {
              expect(rec.source?.spiffe_id, ctx).toBe(req.source);
              expect(rec.destination?.spiffe_id, ctx).toBe(req.destination);
            }
          });
          recorded += got.length;
        },
      ),
      { numRuns: POLICY_SETS },
    );
    expect(cases).toBe(POLICY_SETS * REQUESTS_PER_SET);
    // Both outcomes are exercised, and most requests reach the audit trail.
    expect(blocked).toBeGreaterThan(cases / 10);
    expect(passed).toBeGreaterThan(cases / 10);
    expect(recorded).toBeGreaterThan(cases / 2);
  });
});
