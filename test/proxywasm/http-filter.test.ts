// Full HTTP filter lifecycles through the harness: allow, deny with a 403 carrying the
// reason and the matched rule, no client certificate, identity sources, modes and the
// policy's per-destination rollout, contexts ending cleanly.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { evaluatorPath } from "../../compiler/compile.js";
import { ProxyWasmHost, type Plugin } from "./harness.js";
import { buildModule, CHAT, CORE_POLICY, GATEWAY, IAM, mtlsProperties, POSTGRES, REDIS } from "./fixtures.js";

let wasm: Uint8Array;

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
});

function plugin(configuration: string): { host: ProxyWasmHost; plugin: Plugin } {
  const host = ProxyWasmHost.load(wasm);
  return { host, plugin: host.startPlugin({ name: "zt", rootId: "zt", configuration }) };
}

const GET: Array<[string, string]> = [
  [":method", "GET"],
  [":path", "/v1/items"],
  [":authority", "postgres"],
];

function header(h: Array<[string, string]>, name: string): string | undefined {
  return h.find(([k]) => k === name)?.[1];
}

describe("HTTP filter", () => {
  it("lets an allowed caller through untouched and ends the context", () => {
    const { host, plugin: p } = plugin("");
    const s = p.httpStream(mtlsProperties(IAM, POSTGRES, 5432));
    const out = s.sendRequestHeaders(GET, true);
    expect(out).toEqual({ status: "Continue", localReply: null });
    expect(s.requestHeaders).toEqual(GET);
    s.complete();
    expect(host.vm.contexts.has(s.id)).toBe(false);
    expect(host.metric("zt.filter.allow")).toBe(1n);
    expect(host.vm.diagnostics).toEqual([]);
    expect(host.failed).toBe(false);
  });

  it("denies with 403, the reason and the matched rule in headers and body", () => {
    const { host, plugin: p } = plugin("");
    const s = p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432));
    const out = s.sendRequestHeaders(GET, true);
    expect(out.status).toBe("StopAllIterationAndWatermark");
    const reply = out.localReply!;
    expect(reply.status).toBe(403);
    expect(reply.details).toBe("zt_denied");
    expect(reply.grpcStatus).toBeNull();
    expect(header(reply.headers, "x-zt-decision")).toBe("DENY");
    expect(header(reply.headers, "x-zt-reason")).toBe("default_deny");
    expect(header(reply.headers, "x-zt-rule")).toBeUndefined();
    expect(header(reply.headers, "content-type")).toBe("application/json");
    expect(JSON.parse(reply.body)).toEqual({ error: "forbidden", decision: "DENY", reason: "default_deny", policy_matched: null });
    expect(host.metric("zt.filter.deny")).toBe(1n);
    s.complete();
  });

  it("names the DENY rule that matched", () => {
    // redis is observe by the policy's rollout; the plugin cannot override a matching rollout,
    // so use a policy copy without the rollout to see the enforced DENY rule.
    const strict = buildModule(CORE_POLICY.replace(/ {2}rollout:\n(?: {4}.*\n)+/, "")).wasm;
    const host = ProxyWasmHost.load(strict);
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: "" });
    const out = p.httpStream(mtlsProperties(GATEWAY, REDIS, 6379)).sendRequestHeaders(GET, true);
    expect(out.localReply?.status).toBe(403);
    expect(header(out.localReply!.headers, "x-zt-reason")).toBe("denied_by_rule");
    expect(header(out.localReply!.headers, "x-zt-rule")).toBe("hanzo-core-policy/no-chat-to-redis");
    expect(JSON.parse(out.localReply!.body).policy_matched).toBe("hanzo-core-policy/no-chat-to-redis");
  });

  it("denies a caller without a client certificate (plaintext) in enforce mode", () => {
    const { host, plugin: p } = plugin("");
    const out = p.httpStream(mtlsProperties(null, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    expect(out.localReply?.status).toBe(403);
    expect(header(out.localReply!.headers, "x-zt-reason")).toBe("invalid_request");
    expect(host.metric("zt.filter.no_peer_identity")).toBe(1n);
  });

  it("takes its own identity from the configuration over the local certificate", () => {
    const { plugin: p } = plugin(JSON.stringify({ identity: POSTGRES }));
    // The local certificate says redis, the configuration says postgres: iam may reach postgres:5432.
    const out = p.httpStream(mtlsProperties(IAM, REDIS, 5432)).sendRequestHeaders(GET, true);
    expect(out.status).toBe("Continue");
  });

  it("fails closed without an own identity (no local certificate, none configured)", () => {
    const { host, plugin: p } = plugin("");
    const out = p.httpStream(mtlsProperties(IAM, null, 5432)).sendRequestHeaders(GET, true);
    expect(out.localReply?.status).toBe(403);
    expect(header(out.localReply!.headers, "x-zt-reason")).toBe("internal_error");
    expect(host.failed).toBe(false);
  });

  it("observe mode never blocks and counts the would-be deny", () => {
    const { host, plugin: p } = plugin('{"mode":"observe"}');
    const out = p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    expect(out).toEqual({ status: "Continue", localReply: null });
    const plain = p.httpStream(mtlsProperties(null, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    expect(plain.status).toBe("Continue");
    expect(host.metric("zt.filter.observe_deny")).toBe(2n);
    expect(host.metric("zt.filter.deny")).toBe(0n);
  });

  it("the policy's per-destination rollout overrides the configured mode", () => {
    const { host, plugin: p } = plugin('{"mode":"enforce"}');
    // redis is `observe` in the policy: the DENY rule's verdict is recorded, not enforced.
    const out = p.httpStream(mtlsProperties(CHAT, REDIS, 6379)).sendRequestHeaders(GET, true);
    expect(out.status).toBe("Continue");
    expect(host.metric("zt.filter.observe_deny")).toBe(1n);

    const enforcedDest = buildModule(CORE_POLICY.replace("mode: observe", "mode: enforce")).wasm;
    const h2 = ProxyWasmHost.load(enforcedDest);
    const p2 = h2.startPlugin({ name: "zt", rootId: "zt", configuration: '{"mode":"observe"}' });
    const blocked = p2.httpStream(mtlsProperties(CHAT, REDIS, 6379)).sendRequestHeaders(GET, true);
    expect(blocked.localReply?.status).toBe(403);
    // Other destinations keep the configured observe mode.
    expect(p2.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true).status).toBe("Continue");
  });

  it("denies everything (internal_error) when the module carries no policy image", () => {
    // The bare evaluator: the same code without a linked image. Envoy loads it; it must not allow.
    const host = ProxyWasmHost.load(new Uint8Array(readFileSync(evaluatorPath())));
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: "" });
    const out = p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true);
    expect(out.localReply?.status).toBe(403);
    expect(header(out.localReply!.headers, "x-zt-reason")).toBe("internal_error");
    expect(host.vm.logs.some((l) => l.level === 5 && /no valid policy image/.test(l.message))).toBe(true);
  });

  it("serves many streams on one VM without leaking contexts", () => {
    const { host, plugin: p } = plugin("");
    const before = host.vm.memoryBytes();
    for (let i = 0; i < 5000; i++) {
      const s = p.httpStream(mtlsProperties(i % 2 === 0 ? IAM : CHAT, POSTGRES, 5432));
      const out = s.sendRequestHeaders(GET, true);
      expect(out.status).toBe(i % 2 === 0 ? "Continue" : "StopAllIterationAndWatermark");
      s.complete();
    }
    expect(host.vm.contexts.size).toBe(2); // VM context and the root
    expect(host.vm.memoryBytes()).toBe(before);
    expect(host.metric("zt.filter.allow")).toBe(2500n);
    expect(host.metric("zt.filter.deny")).toBe(2500n);
  });

  it("keeps the HTTP and the network filter apart in one shared VM (two roots)", () => {
    const host = ProxyWasmHost.load(wasm);
    const http = host.startPlugin({ name: "zt-http", rootId: "zt", configuration: '{"mode":"enforce"}' });
    const tcp = host.startPlugin({ name: "zt-tcp", rootId: "zt", configuration: '{"mode":"observe"}' });
    expect(http.rootContextId).not.toBe(tcp.rootContextId);
    expect(http.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true).localReply?.status).toBe(403);
    const c = tcp.connection(mtlsProperties(CHAT, POSTGRES, 5432));
    c.accept();
    expect(c.downstreamData(new TextEncoder().encode("hello"))).toBe("Continue");
    expect(c.open).toBe(true);
  });
});
