// What Envoy loads: the built module's import and export sections (names and signatures,
// read with our own section reader) against what Envoy's host registers for ABI 0.2.1,
// and the harness refusing modules Envoy would refuse.
import { beforeAll, describe, expect, it } from "vitest";
import { ENVOY_HOST_FUNCTIONS_0_2_1, ENVOY_MODULE_FUNCTIONS_0_2_1, START_ALLOWED, ABI_0_1_0_ONLY } from "./envoy-abi.js";
import { HostLoadError, PluginRejectedError, ProxyWasmHost } from "./harness.js";
import { detectAbi } from "./vm.js";
import { formatFuncType, readModuleSections, WasmFormatError, type ModuleSections } from "./wasm-sections.js";
import { buildWasm, i32, minimalFilter, OP, T } from "./wasm-builder.js";
import { buildModule, CORE_POLICY, IAM, mtlsProperties, POSTGRES } from "./fixtures.js";

/** The filter's entry points: exactly these proxy-wasm callbacks are exported. */
const FILTER_CALLBACKS = [
  "proxy_abi_version_0_2_1",
  "malloc",
  "proxy_on_memory_allocate",
  "proxy_on_context_create",
  "proxy_on_vm_start",
  "proxy_on_configure",
  "proxy_on_tick",
  "proxy_on_request_headers",
  "proxy_on_new_connection",
  "proxy_on_downstream_data",
  "proxy_on_upstream_data",
  "proxy_on_http_call_response",
  "proxy_on_done",
  "proxy_on_delete",
  "_initialize",
];

let wasm: Uint8Array;
let sections: ModuleSections;

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
  sections = readModuleSections(wasm);
});

describe("the built module's sections", () => {
  it("declares proxy-wasm ABI 0.2.1 with a ()->() function export", () => {
    const marker = sections.exports.find((e) => e.name === "proxy_abi_version_0_2_1");
    expect(marker?.kind).toBe("func");
    expect(formatFuncType(marker!.type!)).toBe("() -> ()");
    expect(detectAbi(sections)).toBe("0.2.1");
  });

  it("imports only functions Envoy registers for 0.2.1, with Envoy's signatures", () => {
    expect(sections.imports.length).toBeGreaterThan(0);
    for (const imp of sections.imports) {
      expect(imp.kind, `${imp.module}.${imp.name}`).toBe("func");
      const want = ENVOY_HOST_FUNCTIONS_0_2_1.get(`${imp.module}.${imp.name}`);
      expect(want, `${imp.module}.${imp.name} is not registered by Envoy`).toBeDefined();
      expect(formatFuncType(imp.type!), `${imp.module}.${imp.name}`).toBe(formatFuncType(want!));
    }
    const names = sections.imports.map((i) => `${i.module}.${i.name}`);
    for (const forbidden of ["env.abort", "env.seed", "env.Date.now", "env.trace", "env.console.log", ...ABI_0_1_0_ONLY.map((n) => `env.${n}`)]) {
      expect(names).not.toContain(forbidden);
    }
  });

  it("exports memory, the allocator and exactly the filter callbacks, each with the signature Envoy requires", () => {
    const funcs = sections.exports.filter((e) => e.kind === "func");
    expect(sections.exports.find((e) => e.name === "memory")?.kind).toBe("memory");
    expect(formatFuncType(funcs.find((e) => e.name === "malloc")!.type!)).toBe("(i32) -> i32");
    for (const e of funcs) {
      const want = ENVOY_MODULE_FUNCTIONS_0_2_1.get(e.name);
      if (want !== undefined) expect(formatFuncType(e.type!), e.name).toBe(formatFuncType(want));
    }
    const proxyish = funcs.map((e) => e.name).filter((n) => n.startsWith("proxy_") || n === "malloc" || n.startsWith("_") || n === "main");
    expect(proxyish.sort()).toEqual([...FILTER_CALLBACKS].sort());
    // `_start`/`main` would be run by Envoy as a WASI command; only the reactor entry exists.
    expect(funcs.some((e) => e.name === "_start" || e.name === "main")).toBe(false);
  });

  it("has no start section (it would run before Envoy restricts host calls) and one memory", () => {
    expect(sections.start).toBeNull();
    expect(sections.memories).toHaveLength(1);
    expect(sections.customSections.map((c) => c.name)).toContain("zt.manifest");
  });

  it("reports malformed binaries", () => {
    expect(() => readModuleSections(new Uint8Array([1, 2, 3]))).toThrow(WasmFormatError);
    const truncated = wasm.slice(0, 40);
    expect(() => readModuleSections(truncated)).toThrow(WasmFormatError);
  });
});

describe("start-up", () => {
  it("makes only host calls Envoy allows during start, and runs again harmlessly", () => {
    const host = ProxyWasmHost.load(wasm);
    for (const call of host.vm.startCalls) expect(START_ALLOWED.has(call), call).toBe(true);
    // Envoy may run start on several instances and the module must tolerate a second call.
    host.vm.invokeExport("_initialize", []);
    expect(host.failed).toBe(false);
    const plugin = host.startPlugin({ name: "zt", rootId: "zt", configuration: "" });
    const out = plugin.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders([[":method", "GET"]], true);
    expect(out.status).toBe("Continue");
  });

  it("configures the same root twice and on a canary VM with the same result", () => {
    const host = ProxyWasmHost.load(wasm, { canary: true });
    const plugin = host.startPlugin({ name: "zt", rootId: "zt", configuration: '{"mode":"enforce"}' });
    expect(host.vm.configureRoot(plugin.root)).toBe(true);
    const out = plugin.httpStream(mtlsProperties("spiffe://hanzo.ai/x/y/z", POSTGRES, 5432)).sendRequestHeaders([[":method", "GET"]], true);
    expect(out.localReply?.status).toBe(403);
  });
});

describe("the harness refuses what Envoy refuses", () => {
  it("a module without an ABI marker", () => {
    const m = buildWasm([], [{ type: T.i_i, body: i32(8), export: "malloc" }]);
    expect(() => ProxyWasmHost.load(m)).toThrow(/Missing or unknown Proxy-Wasm ABI version/);
  });

  it("an import Envoy does not provide (AssemblyScript's default env.abort)", () => {
    const m = minimalFilter([], [{ module: "env", name: "abort", type: { params: ["i32", "i32", "i32", "i32"], results: [] } }]);
    expect(() => ProxyWasmHost.load(m)).toThrow(/missing import: env\.abort/);
  });

  it("an ABI 0.1.0 host function in a 0.2.1 module", () => {
    const m = minimalFilter([], [{ module: "env", name: "proxy_get_configuration", type: T.ii_i }]);
    expect(() => ProxyWasmHost.load(m)).toThrow(/missing import: env\.proxy_get_configuration/);
  });

  it("a known import with another signature", () => {
    const m = minimalFilter([], [{ module: "env", name: "proxy_log", type: T.ii_i }]);
    expect(() => ProxyWasmHost.load(m)).toThrow(/import type mismatch: env\.proxy_log/);
  });

  it("a callback exported with the wrong signature", () => {
    const m = minimalFilter([{ type: T.i_i, body: i32(1), export: "proxy_on_configure" }]);
    expect(() => ProxyWasmHost.load(m)).toThrow(/Bad function signature for: proxy_on_configure/);
  });

  it("a module without an allocator", () => {
    const m = buildWasm([], [{ type: T.v_v, body: [], export: "proxy_abi_version_0_2_1" }]);
    expect(() => ProxyWasmHost.load(m)).toThrow(/missing malloc/);
  });

  it("a start function that calls a restricted host function", () => {
    const httpCall = { params: Array(10).fill("i32"), results: ["i32"] } as const;
    const body = [...Array.from({ length: 10 }, () => i32(0)).flat(), OP.call, 0, OP.drop];
    const m = minimalFilter([{ type: T.v_v, body, export: "_initialize" }], [{ module: "env", name: "proxy_http_call", type: { params: [...httpCall.params], results: [...httpCall.results] } }]);
    const err = (() => {
      try {
        ProxyWasmHost.load(m);
        return null;
      } catch (e) {
        return e as HostLoadError;
      }
    })();
    expect(err).toBeInstanceOf(HostLoadError);
    expect(err!.failState).toBe("StartFailed");
    expect(err!.message).toMatch(/restricted_callback/);
  });

  it("a configure that returns false (the canary rejects the plugin)", () => {
    const m = minimalFilter([{ type: T.ii_i, body: i32(0), export: "proxy_on_configure" }]);
    const host = ProxyWasmHost.load(m);
    expect(() => host.startPlugin({ name: "p", rootId: "p", configuration: "{}" })).toThrow(PluginRejectedError);
  });

  it("a trap fails the VM closed: 503 wasm_fail_stream now and for later streams; fail-open continues", () => {
    const trapping = minimalFilter([{ type: { params: ["i32", "i32", "i32"], results: ["i32"] }, body: [OP.unreachable], export: "proxy_on_request_headers" }]);
    const host = ProxyWasmHost.load(trapping);
    const plugin = host.startPlugin({ name: "p", rootId: "p", configuration: "" });
    const first = plugin.httpStream().sendRequestHeaders([[":method", "GET"]], true);
    expect(first.status).toBe("StopAllIterationAndWatermark");
    expect(first.localReply).toMatchObject({ status: 503, details: "wasm_fail_stream" });
    expect(host.vm.failMessage).toMatch(/proxy_on_request_headers failed/);
    const later = plugin.httpStream().sendRequestHeaders([[":method", "GET"]], true);
    expect(later.localReply?.status).toBe(503);
    const conn = plugin.connection();
    conn.accept();
    expect(conn.closedBy).toBe("wasm_fail");

    const open = ProxyWasmHost.load(trapping);
    const p2 = open.startPlugin({ name: "p", rootId: "p", configuration: "", failOpen: true });
    expect(p2.httpStream().sendRequestHeaders([[":method", "GET"]], true)).toEqual({ status: "Continue", localReply: null });
  });
});
