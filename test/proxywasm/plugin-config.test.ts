// The plugin configuration the module parses in proxy_on_configure: tolerant of layout and
// unknown keys, strict about the keys it knows (a bad value rejects the filter config).
import { beforeAll, describe, expect, it } from "vitest";
import { PluginRejectedError, ProxyWasmHost } from "./harness.js";
import { buildModule, CHAT, CORE_POLICY, IAM, mtlsProperties, POSTGRES } from "./fixtures.js";

let wasm: Uint8Array;
const GET: Array<[string, string]> = [[":method", "GET"]];

beforeAll(() => {
  wasm = buildModule(CORE_POLICY).wasm;
});

function accepts(configuration: string): ProxyWasmHost {
  const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: "http://127.0.0.1:1" } });
  host.startPlugin({ name: "zt", rootId: "zt", configuration });
  return host;
}

function rejects(configuration: string): string {
  const host = ProxyWasmHost.load(wasm);
  let error: unknown = null;
  try {
    host.startPlugin({ name: "zt", rootId: "zt", configuration });
  } catch (e) {
    error = e;
  }
  expect(error, configuration).toBeInstanceOf(PluginRejectedError);
  // The canary VM ran the configure and refused; the reason is in the module's log.
  return (error as Error).message;
}

/** The mode a configuration results in, observed through a would-be deny. */
function modeOf(configuration: string): "enforce" | "observe" {
  const host = ProxyWasmHost.load(wasm);
  const p = host.startPlugin({ name: "zt", rootId: "zt", configuration });
  const out = p.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders(GET, true);
  return out.localReply === null ? "observe" : "enforce";
}

describe("plugin configuration", () => {
  it("empty means enforce with the identity from the local certificate", () => {
    expect(modeOf("")).toBe("enforce");
    expect(modeOf("   \n ")).toBe("enforce");
    expect(modeOf("{}")).toBe("enforce");
    const host = ProxyWasmHost.load(wasm);
    const p = host.startPlugin({ name: "zt", rootId: "zt", configuration: "" });
    expect(p.httpStream(mtlsProperties(IAM, POSTGRES, 5432)).sendRequestHeaders(GET, true).status).toBe("Continue");
  });

  it("tolerates layout, escapes, unknown keys of any type and duplicate keys (last wins)", () => {
    expect(modeOf('\n{ "mode" :\t"observe" }\n')).toBe("observe");
    expect(modeOf('{"mode":"enforce","mode":"observe"}')).toBe("observe");
    expect(modeOf('{"m\\u006fde":"\\u006fbserve"}')).toBe("observe");
    expect(modeOf('{"extra":{"a":[1,2.5e3,-3,true,false,null,{"b":"\\"x\\""}]},"mode":"observe","note":"caf\\u00e9 \\ud83d\\ude00"}')).toBe("observe");
    const host = accepts('{"future_key":[{"x":1}],"ingest_cluster":"zt_engine"}');
    expect(host.vm.logs.some((l) => l.level === 3 && /unknown key future_key/.test(l.message))).toBe(true);
  });

  it("accepts every documented key", () => {
    accepts(
      JSON.stringify({
        mode: "observe",
        identity: POSTGRES,
        ingest_cluster: "outbound|8054||zt.hanzo.svc.cluster.local",
        ingest_path: "/v1/audit/ingest",
        ingest_authority: "zt.hanzo.svc:8054",
        ingest_token: "tok_abc.DEF-123",
        ingest_timeout_ms: 2500,
        flush_interval_ms: 250,
        max_buffer_records: 50000,
        max_buffer_bytes: 4194304,
        max_batch_records: 5000,
        max_batch_bytes: 1048576,
        policy_version: `sha256:${"0".repeat(64)}`,
        origin: "envoy sidecar postgres-0",
      }),
    );
  });

  it.each([
    ["not an object", "[1,2]", /must be a JSON object/],
    ["bad mode", '{"mode":"block"}', /mode must be/],
    ["mode not a string", '{"mode":1}', /must be a string: mode/],
    ["identity not SPIFFE", '{"identity":"https://postgres"}', /not a valid SPIFFE ID/],
    ["identity with trailing slash", `{"identity":"${POSTGRES}/"}`, /not a valid SPIFFE ID/],
    ["negative number", '{"flush_interval_ms":-5}', /allowed range: flush_interval_ms/],
    ["fraction", '{"flush_interval_ms":1.5}', /allowed range/],
    ["too small", '{"flush_interval_ms":1}', /allowed range/],
    ["batch above the ingest limit", '{"max_batch_records":5001}', /allowed range: max_batch_records/],
    ["path without slash", '{"ingest_path":"v1/audit"}', /starting with/],
    ["token with a space", '{"ingest_token":"a b"}', /bad value for ingest_token/],
    ["trailing garbage", '{"mode":"enforce"} x', /trailing characters/],
    ["unterminated", '{"mode":"enforce"', /unterminated|expected/],
    ["missing colon", '{"mode" "enforce"}', /':' expected/],
    ["raw control character", '{"origin":"a\u0001b"}', /control character/],
    ["bad escape", '{"origin":"\\q"}', /bad escape/],
    ["lone surrogate", '{"origin":"\\ud800"}', /lone surrogate/],
    ["bad literal in unknown key", '{"x":tru}', /bad literal/],
    ["deep nesting", `{"x":${"[".repeat(40)}${"]".repeat(40)}}`, /nests too deeply/],
  ])("rejects %s", (_what, configuration, message) => {
    rejects(configuration);
    // The reason is logged by the module on the canary VM; rerun on a VM without canary to read it.
    const host = ProxyWasmHost.load(wasm, { canary: false });
    expect(() => host.startPlugin({ name: "zt", rootId: "zt", configuration })).toThrow(PluginRejectedError);
    expect(host.vm.logs.map((l) => l.message).join("\n")).toMatch(message);
  });

  it("a rejected configuration leaves the VM able to take the next one", () => {
    const host = ProxyWasmHost.load(wasm, { canary: false });
    expect(() => host.startPlugin({ name: "bad", rootId: "zt", configuration: '{"x":"\\q"}' })).toThrow(PluginRejectedError);
    const good = host.startPlugin({ name: "good", rootId: "zt", configuration: JSON.stringify({ identity: POSTGRES }) });
    // The configured identity (not the local certificate, here redis) decides.
    const out = good.httpStream(mtlsProperties(IAM, "spiffe://hanzo.ai/hanzo-k8s/hanzo/redis", 5432)).sendRequestHeaders(GET, true);
    expect(out.status).toBe("Continue");
  });

  it("rejects a configuration larger than the module keeps (no silent truncation)", () => {
    const big = JSON.stringify({ origin: "o", ingest_token: "t".repeat(4096), a: "x", identity: POSTGRES, extra: "y".repeat(20000) });
    // Unknown keys are skipped without keeping their value: this one fits.
    accepts(big);
    const dup = "{" + Array.from({ length: 6 }, () => `"ingest_token":"${"t".repeat(4096)}"`).join(",") + "}";
    rejects(dup);
  });
});
