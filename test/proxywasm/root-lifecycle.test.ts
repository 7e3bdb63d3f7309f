// Roots coming and going while the engine is down (issue 27, findings 3 and 4): every ingest
// retry waits an exponentially growing, capped delay, a draining root included; a draining
// root gives up after a bound (counting what it drops) and calls proxy_done; configuration
// updates during an outage never exhaust the root table; and a stream is decided by the root
// that created it, or denied when that root is gone.
import { beforeAll, describe, expect, it } from "vitest";
import { ProxyWasmHost } from "./harness.js";
import { buildModule, GET, CHAT, CORE_POLICY, IAM, mtlsProperties, POSTGRES } from "./fixtures.js";

let wasm: Uint8Array;

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
});

function auditConfig(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ingest_cluster: "zt_engine", flush_interval_ms: 100, ...extra });
}

function load(): ProxyWasmHost {
  return ProxyWasmHost.load(wasm, { clusters: { zt_engine: "http://127.0.0.1:9" }, canary: false });
}

function failPending(host: ProxyWasmHost): number {
  const calls = host.pendingHttpCalls();
  for (const c of calls) host.respondHttpCall(c.token, { status: 503 });
  return calls.length;
}

describe("ingest retries back off", () => {
  it("a draining root does not retry at once: 1,000 failed answers are 1,000 calls spread over time, then it gives up", () => {
    const host = load();
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: auditConfig({ drain_timeout_ms: 30_000 }) });
    for (let i = 0; i < 3; i++) p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    expect(p.shutdown()).toBe("pending");
    // The flush on_done started; fail it: no new call may leave before time passes.
    expect(failPending(host)).toBe(1);
    expect(host.pendingHttpCalls()).toHaveLength(0);
    // Time moves in 100 ms ticks; record when each retry leaves.
    const sentAt: number[] = [];
    let t = 0;
    while (!p.deleted && t < 120_000) {
      host.advance(100);
      t += 100;
      if (failPending(host) > 0) sentAt.push(t);
    }
    expect(p.deleted).toBe(true);
    // Gave up within the drain bound (plus one backoff step), counting the three records.
    expect(t).toBeLessThanOrEqual(30_000 + 10_000);
    expect(host.metric("zt.audit.dropped")).toBe(3n);
    expect(host.vm.logs.some((l) => /gave up|giving up/.test(l.message))).toBe(true);
    // Exponential: gaps grow, and no more than a handful of calls in 30 s.
    const gaps = sentAt.slice(1).map((v, i) => v - sentAt[i]!);
    expect(sentAt.length).toBeGreaterThan(2);
    expect(sentAt.length).toBeLessThan(20);
    expect(gaps.at(-1)!).toBeGreaterThan(gaps[0]!);
  });

  it("a live root backs off too, up to the cap, and resets after a delivered batch", () => {
    const host = load();
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: auditConfig({ retry_max_ms: 5000 }) });
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    const sentAt: number[] = [];
    for (let t = 100; t <= 60_000; t += 100) {
      host.advance(100);
      if (failPending(host) > 0) sentAt.push(t);
    }
    const gaps = sentAt.slice(1).map((v, i) => v - sentAt[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(5000 + 100);
    expect(Math.max(...gaps)).toBeGreaterThanOrEqual(2500);
    expect(gaps[0]!).toBeLessThan(1000);
    // Delivered: the next batch leaves on the next tick again.
    host.advance(5100);
    for (const c of host.pendingHttpCalls()) host.respondHttpCall(c.token, { status: 202 });
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    host.advance(100);
    expect(host.pendingHttpCalls()).toHaveLength(1);
  });

  it("configuration updates during an engine outage never exhaust the root table", () => {
    const host = load();
    let old = host.startPlugin({ name: "zt", rootId: "zt", configuration: auditConfig() });
    for (let i = 0; i < 100; i++) {
      old.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
      // Envoy adds the new root before the old one leaves; the old one cannot drain.
      const next = host.startPlugin({ name: "zt", rootId: "zt", configuration: auditConfig({ origin: `update-${i}` }) });
      expect(old.shutdown()).toBe("pending");
      failPending(host);
      host.advance(100);
      failPending(host);
      old = next;
    }
    const s = old.httpStream(mtlsProperties(IAM, POSTGRES, 5432));
    expect(s.sendRequestHeaders(GET, true).localReply).toBeNull();
    expect(host.vm.logs.some((l) => /too many plugin configurations/.test(l.message))).toBe(false);
    expect(host.vm.roots.size).toBeLessThanOrEqual(32);
    expect(host.failed).toBe(false);
  });
});

describe("a stream belongs to the root that created it", () => {
  it("is denied (internal_error) once its root is deleted, not decided with the deleted root's settings", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: '{"mode":"enforce"}' });
    const s = p.httpStream(mtlsProperties(IAM, POSTGRES, 5432));
    host.vm.ensureCreated(s.ctx);
    expect(p.shutdown()).toBe("deleted");
    const out = s.sendRequestHeaders(GET, true);
    expect(out.localReply?.status).toBe(403);
    expect(out.localReply!.headers.find(([k]) => k === "x-zt-reason")?.[1]).toBe("internal_error");
  });

  it("is denied, not decided with the settings of a new root that took its slot", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    const a = host.startPlugin({ name: "zt", rootId: "a", configuration: '{"mode":"enforce"}' });
    const s = a.httpStream(mtlsProperties(CHAT, POSTGRES, 5432));
    host.vm.ensureCreated(s.ctx);
    expect(a.shutdown()).toBe("deleted");
    // A new root reuses the slot, in observe mode: a default deny would pass there.
    const b = host.startPlugin({ name: "zt", rootId: "b", configuration: '{"mode":"observe"}' });
    const out = s.sendRequestHeaders(GET, true);
    expect(out.localReply?.status).toBe(403);
    expect(out.localReply!.headers.find(([k]) => k === "x-zt-reason")?.[1]).toBe("internal_error");
    // b's own streams follow b's settings.
    expect(b.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true).localReply).toBeNull();
  });

  it("a draining root still decides its own streams", () => {
    const host = load();
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: auditConfig() });
    p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    const s = p.httpStream(mtlsProperties(IAM, POSTGRES, 5432));
    host.vm.ensureCreated(s.ctx);
    expect(p.shutdown()).toBe("pending");
    expect(s.sendRequestHeaders(GET, true).localReply).toBeNull();
  });
});
