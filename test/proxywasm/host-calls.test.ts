// What a decision asks of the host, and the header lists the filter hands it. A decision
// reads the clock only for an audit record (none with audit off; the record's time and
// latency with audit on); the 403's headers and the ingest request's headers are exact
// lists in the pairs encoding, compared with a plain reference over generated values.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ProxyWasmHost, type Plugin } from "./harness.js";
import { buildModule, CHAT, CORE_POLICY, GET, IAM, mtlsProperties, POSTGRES, REDIS } from "./fixtures.js";
import type { Pairs } from "./encodings.js";

const CLOCK = "env.proxy_get_current_time_nanoseconds";
const PROPERTY = "env.proxy_get_property";

let wasm: Uint8Array;
let strict: Uint8Array;

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
  // Without the rollout, the DENY rule to redis is enforced: a 403 that names its rule.
  strict = buildModule(CORE_POLICY.replace(/ {2}rollout:\n(?: {4}.*\n)+/, "")).wasm;
});

function start(module: Uint8Array, configuration: string, startNs?: bigint): { host: ProxyWasmHost; plugin: Plugin } {
  const host = ProxyWasmHost.load(module, { clusters: { zt_engine: "http://127.0.0.1:9" }, ...(startNs !== undefined ? { startNs } : {}) });
  return { host, plugin: host.startPlugin({ name: "zt", rootId: "zt", configuration }) };
}

/** Host calls of one kind that `action` made. */
function callsDuring(host: ProxyWasmHost, name: string, action: () => void): number {
  const before = host.vm.hostCalls.get(name) ?? 0;
  action();
  return (host.vm.hostCalls.get(name) ?? 0) - before;
}

describe("a decision's host calls", () => {
  it("with audit off, reads no clock: allowed, denied, observed, L4, and without a root", () => {
    const { host, plugin: p } = start(wasm, '{"mode":"enforce"}');
    const clock = callsDuring(host, CLOCK, () => {
      expect(p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true).status).toBe("Continue");
      expect(p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true).localReply?.status).toBe(403);
      expect(p.httpStream(mtlsProperties(CHAT, REDIS, 6379)).sendRequestHeaders(GET, true).status).toBe("Continue"); // observe by rollout
      expect(p.httpStream(mtlsProperties(null, POSTGRES, 5432)).sendRequestHeaders(GET, true).localReply?.status).toBe(403);
      const c = p.connection(mtlsProperties(IAM, POSTGRES, 5432));
      c.accept();
      expect(c.downstreamData(new Uint8Array([1]))).toBe("Continue");
    });
    expect(clock).toBe(0);
    expect(host.metric("zt.filter.allow")).toBe(2n);
    expect(host.metric("zt.filter.deny")).toBe(2n);
    expect(host.metric("zt.filter.observe_deny")).toBe(1n);

    // A stream whose root is gone is denied (internal_error), still without the clock.
    const orphan = p.httpStream(mtlsProperties(IAM, POSTGRES, 5432));
    expect(p.shutdown()).toBe("deleted");
    expect(callsDuring(host, CLOCK, () => expect(orphan.sendRequestHeaders(GET, true).localReply?.status).toBe(403))).toBe(0);
    expect(host.failed).toBe(false);
  });

  it("reads the three properties it needs, two when its own identity is configured", () => {
    const { host, plugin: p } = start(wasm, "");
    expect(callsDuring(host, PROPERTY, () => p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true))).toBe(3);
    const configured = start(wasm, JSON.stringify({ identity: POSTGRES }));
    expect(callsDuring(configured.host, PROPERTY, () => configured.plugin.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true))).toBe(2);
  });

  it("with audit on, reads the clock for the record, which carries the time of its own decision", () => {
    // Whole milliseconds, so the records' timestamps must equal the decision times exactly.
    const t0 = BigInt(Date.now() - 60_000) * 1_000_000n;
    const { host, plugin: p } = start(wasm, JSON.stringify({ ingest_cluster: "zt_engine", flush_interval_ms: 1000 }), t0);
    const first = callsDuring(host, CLOCK, () => p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true));
    expect(first).toBe(2); // the decision's time and, after it, its latency
    host.advance(7);
    const second = callsDuring(host, CLOCK, () => p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true));
    expect(second).toBe(2);
    host.advance(1000);
    const [call] = host.pendingHttpCalls();
    const records = (JSON.parse(new TextDecoder().decode(call!.body)) as { records: Array<{ timestamp: string; decision: string; latency_us: number }> }).records;
    const ms = Number(t0 / 1_000_000n);
    expect(records.map((r) => [r.decision, Date.parse(r.timestamp), r.latency_us])).toEqual([
      ["ALLOW", ms, 0],
      ["DENY", ms + 7, 0],
    ]);
  });
});

describe("header lists in the pairs encoding", () => {
  it("the 403 carries exactly content-type, decision, reason and the matched rule, in order", () => {
    const { host, plugin: p } = start(strict, "");
    const named = p.httpStream(mtlsProperties(CHAT, REDIS, 6379)).sendRequestHeaders(GET, true).localReply!;
    expect(named.headers).toEqual([
      ["content-type", "application/json"],
      ["x-zt-decision", "DENY"],
      ["x-zt-reason", "denied_by_rule"],
      ["x-zt-rule", "hanzo-core-policy/no-chat-to-redis"],
    ]);
    const unnamed = p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true).localReply!;
    expect(unnamed.headers).toEqual([
      ["content-type", "application/json"],
      ["x-zt-decision", "DENY"],
      ["x-zt-reason", "default_deny"],
    ]);
    expect(host.vm.diagnostics).toEqual([]);
  });

  it("the ingest request's headers equal the reference list for generated configured values", () => {
    // Printable ASCII without spaces: what the configuration accepts for these keys.
    const printable = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 80 });
    fc.assert(
      fc.property(printable, printable, fc.option(printable, { nil: undefined }), (path, authority, token) => {
        const config = { ingest_cluster: "zt_engine", ingest_path: `/${path}`, ingest_authority: authority, ...(token !== undefined ? { ingest_token: token } : {}) };
        const { host, plugin: p } = start(wasm, JSON.stringify(config));
        p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
        host.advance(5000);
        const calls = host.pendingHttpCalls();
        const expected: Pairs = [
          [":method", "POST"],
          [":path", `/${path}`],
          [":authority", authority],
          ["content-type", "application/json"],
          ...(token !== undefined ? ([["authorization", `Bearer ${token}`]] as Pairs) : []),
        ];
        expect(calls).toHaveLength(1);
        expect(calls[0]!.headers).toEqual(expected);
        expect(host.vm.diagnostics).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });
});
