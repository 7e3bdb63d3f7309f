// Host values of any size cost bounded memory (issue 27, finding 1). The runtime is the stub
// allocator (it never frees), so every value the host writes through `malloc` must land in
// memory the filter reuses: a 64 KiB peer SAN on every request, plugin configurations over
// 64 KiB on every configure, an ingest answer whose `:status` is 64 KiB long. Each test warms
// up, takes the module's memory size, and requires it unchanged after many more rounds.
import { beforeAll, describe, expect, it } from "vitest";
import { REASON_NAMES } from "../../compiler/model.js";
import { ProxyWasmHost } from "./harness.js";
import { buildModule, GET, CORE_POLICY, IAM, mtlsProperties, POSTGRES } from "./fixtures.js";

let wasm: Uint8Array;

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
});

/** A syntactically valid SPIFFE ID of exactly `bytes` bytes (one long path segment). */
function longId(bytes: number): string {
  const head = "spiffe://hanzo.ai/";
  return head + "a".repeat(bytes - head.length);
}

describe("host values of any size", () => {
  it("a 64 KiB peer SAN: 100,000 requests, each denied invalid_request, memory flat after warm-up, no trap", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: '{"mode":"enforce"}' });
    const props = mtlsProperties(longId(65536), POSTGRES, 5432);
    const one = (): void => {
      const s = p.httpStream(props);
      const out = s.sendRequestHeaders(GET, true);
      if (out.localReply?.status !== 403) throw new Error(`expected a 403, got ${JSON.stringify(out.localReply)} (failed: ${host.vm.failMessage})`);
      s.complete();
    };
    for (let i = 0; i < 1000; i++) one();
    const s = p.httpStream(props);
    const reason = s.sendRequestHeaders(GET, true).localReply!.headers.find(([k]) => k === "x-zt-reason")?.[1];
    expect(reason).toBe("invalid_request");
    s.complete();
    const warm = host.vm.memoryBytes();
    for (let i = 0; i < 99_000; i++) one();
    expect(host.failed).toBe(false);
    expect(host.vm.memoryBytes()).toBe(warm);
    expect(host.metric("zt.filter.deny")).toBe(100_001n);
  });

  it("peer SANs just under the arena size (65,000-65,480 bytes) leak nothing either", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: "" });
    const sizes = [65_000, 65_100, 65_200, 65_300, 65_400, 65_480, 65_481, 2_048, 2_049];
    const round = (): void => {
      for (const n of sizes) {
        const s = p.httpStream(mtlsProperties(longId(n), POSTGRES, 5432));
        s.sendRequestHeaders(GET, true);
        s.complete();
      }
    };
    for (let i = 0; i < 50; i++) round();
    const warm = host.vm.memoryBytes();
    for (let i = 0; i < 2000; i++) round();
    expect(host.vm.memoryBytes()).toBe(warm);
    expect(host.failed).toBe(false);
    // A 2,048-byte SAN is a valid SPIFFE ID length: it is evaluated, not refused (default deny here).
    const s = p.httpStream(mtlsProperties(longId(2048), POSTGRES, 5432));
    expect(s.sendRequestHeaders(GET, true).localReply!.headers.find(([k]) => k === "x-zt-reason")?.[1]).toBe(REASON_NAMES[3]);
  });

  it("plugin configurations over 64 KiB: 300 configures (new roots, removed after use), memory flat", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    // An unknown key is skipped whatever its size; the configuration itself is valid.
    const configuration = JSON.stringify({ mode: "enforce", annotations: "x".repeat(100_000) });
    const round = (): void => {
      const p = host.startPlugin({ name: "zt", rootId: "zt", configuration });
      const s = p.httpStream(mtlsProperties(IAM, POSTGRES, 5432));
      expect(s.sendRequestHeaders(GET, true).localReply).toBeNull();
      s.complete();
      expect(p.shutdown()).toBe("deleted");
    };
    for (let i = 0; i < 20; i++) round();
    const warm = host.vm.memoryBytes();
    for (let i = 0; i < 280; i++) round();
    expect(host.vm.memoryBytes()).toBe(warm);
    expect(host.failed).toBe(false);
  });

  it("refuses a configuration larger than any valid one could need, and keeps running", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    const huge = JSON.stringify({ mode: "enforce", annotations: "x".repeat(2 * 1024 * 1024) });
    expect(() => host.startPlugin({ name: "zt", rootId: "zt", configuration: huge })).toThrow(/Failed to configure/);
    expect(host.vm.logs.some((l) => /configuration is larger than/.test(l.message))).toBe(true);
    const p = host.startPlugin({ name: "zt", rootId: "zt2", configuration: "" });
    expect(p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true).localReply).toBeNull();
  });

  it("an ingest answer with a 64 KiB :status: 500 answers, treated as no answer, memory flat", () => {
    const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: "http://127.0.0.1:9" }, canary: false });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: JSON.stringify({ ingest_cluster: "zt_engine", flush_interval_ms: 10 }) });
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    const huge = "2".repeat(70_000);
    const round = (): void => {
      // Past any retry backoff: the next flush leaves on this tick.
      host.advance(120_000);
      const [call] = host.pendingHttpCalls();
      if (call === undefined) throw new Error("no ingest call in flight");
      host.vm.deliverHttpCallResponse(call, { headers: [[":status", huge]], body: new Uint8Array(0), trailers: [] });
    };
    for (let i = 0; i < 20; i++) round();
    const warm = host.vm.memoryBytes();
    for (let i = 0; i < 480; i++) round();
    expect(host.vm.memoryBytes()).toBe(warm);
    expect(host.metric("zt.audit.buffered")).toBe(1n);
    expect(host.metric("zt.audit.sent")).toBe(0n);
    expect(host.failed).toBe(false);
  });
});
