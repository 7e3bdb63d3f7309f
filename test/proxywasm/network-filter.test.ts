// Full L4 (network filter) lifecycles: connection-level enforcement for TCP services such as
// postgres:5432, decided on the first client bytes (after the TLS handshake), denial by
// closing the connection before any byte reaches the upstream.
import { beforeAll, describe, expect, it } from "vitest";
import { ProxyWasmHost, type Plugin } from "./harness.js";
import { buildModule, CHAT, CORE_POLICY, GATEWAY, IAM, mtlsProperties, POSTGRES, REDIS } from "./fixtures.js";

let wasm: Uint8Array;
const enc = new TextEncoder();
// A PostgreSQL StartupMessage-like first packet and a server greeting.
const STARTUP = enc.encode("\u0000\u0000\u0000\u0008\u0004\u00d2\u0016\u002f");
const GREETING = enc.encode("R\u0000\u0000\u0000\u0008\u0000\u0000\u0000\u0000");

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
});

function plugin(configuration: string): { host: ProxyWasmHost; plugin: Plugin } {
  const host = ProxyWasmHost.load(wasm);
  return { host, plugin: host.startPlugin({ name: "zt-tcp", rootId: "zt", configuration }) };
}

describe("network filter", () => {
  it("passes an allowed connection's bytes both ways and ends the context on close", () => {
    const { host, plugin: p } = plugin("");
    const c = p.connection(mtlsProperties(GATEWAY, POSTGRES, 5432));
    expect(c.accept()).toBe("Continue");
    expect(c.downstreamData(STARTUP)).toBe("Continue");
    expect(c.upstreamData(GREETING)).toBe("Continue");
    expect(c.downstreamData(enc.encode("Q select 1"))).toBe("Continue");
    expect(c.toUpstream).toHaveLength(2);
    expect(c.toDownstream).toHaveLength(1);
    c.remoteClose();
    expect(host.vm.contexts.has(c.id)).toBe(false);
    expect(host.metric("zt.filter.allow")).toBe(1n); // one decision per connection
  });

  it("closes a denied connection before any byte reaches the upstream", () => {
    const { host, plugin: p } = plugin("");
    const c = p.connection(mtlsProperties(CHAT, POSTGRES, 5432));
    c.accept();
    expect(c.downstreamData(STARTUP)).toBe("StopIteration");
    expect(c.closedBy).toBe("filter");
    expect(c.toUpstream).toHaveLength(0);
    expect(host.metric("zt.filter.deny")).toBe(1n);
    expect(host.vm.contexts.has(c.id)).toBe(false);
  });

  it("closes a connection without a client certificate", () => {
    const { plugin: p } = plugin("");
    const c = p.connection(mtlsProperties(null, POSTGRES, 5432));
    c.accept();
    expect(c.downstreamData(STARTUP)).toBe("StopIteration");
    expect(c.closedBy).toBe("filter");
  });

  it("decides on the first data even when it is empty with end of stream", () => {
    const { plugin: p } = plugin("");
    const c = p.connection(mtlsProperties(CHAT, POSTGRES, 5432));
    c.accept();
    expect(c.downstreamData(new Uint8Array(0), true)).toBe("StopIteration");
    expect(c.closedBy).toBe("filter");
  });

  it("lets a server-first greeting through before the decision, never client bytes", () => {
    const { plugin: p } = plugin("");
    const c = p.connection(mtlsProperties(CHAT, POSTGRES, 5432));
    c.accept();
    expect(c.upstreamData(GREETING)).toBe("Continue");
    expect(c.downstreamData(STARTUP)).toBe("StopIteration");
    expect(c.toUpstream).toHaveLength(0);
  });

  it("checks the port: iam may reach postgres on 5432 only", () => {
    const { plugin: p } = plugin(JSON.stringify({ identity: POSTGRES }));
    const ok = p.connection(mtlsProperties(IAM, REDIS, 5432));
    ok.accept();
    expect(ok.downstreamData(STARTUP)).toBe("Continue");
    const wrongPort = p.connection(mtlsProperties(IAM, REDIS, 5433));
    wrongPort.accept();
    expect(wrongPort.downstreamData(STARTUP)).toBe("StopIteration");
  });

  it("observe mode keeps the connection open and counts the would-be deny", () => {
    const { host, plugin: p } = plugin('{"mode":"observe"}');
    const c = p.connection(mtlsProperties(CHAT, POSTGRES, 5432));
    c.accept();
    expect(c.downstreamData(STARTUP)).toBe("Continue");
    expect(c.downstreamData(STARTUP)).toBe("Continue");
    expect(c.open).toBe(true);
    expect(host.metric("zt.filter.observe_deny")).toBe(1n);
  });

  it("holds many concurrent connections (the context table grows) and frees them", () => {
    const { host, plugin: p } = plugin("");
    const conns = Array.from({ length: 3000 }, (_, i) => p.connection(mtlsProperties(i % 3 === 0 ? CHAT : IAM, POSTGRES, 5432)));
    for (const c of conns) c.accept();
    conns.forEach((c, i) => expect(c.downstreamData(STARTUP)).toBe(i % 3 === 0 ? "StopIteration" : "Continue"));
    // Decisions stick per connection.
    conns.forEach((c, i) => {
      if (i % 3 !== 0) expect(c.downstreamData(STARTUP)).toBe("Continue");
    });
    for (const c of conns) if (c.open) c.remoteClose();
    expect(host.vm.contexts.size).toBe(2);
    expect(host.metric("zt.filter.allow")).toBe(2000n);
    expect(host.metric("zt.filter.deny")).toBe(1000n);
  });
});
