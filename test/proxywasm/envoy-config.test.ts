// `zt envoy-config`: the Envoy fragment and the Istio WasmPlugin manifests, checked for
// structure, for the module's sha256, and — the part that matters — that the plugin
// configuration they carry is accepted by the module itself in the harness.
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { envoyConfigCommand, envoyConfigText } from "../../host/cli/envoy-config.js";
import { UsageError } from "../../host/cli/io.js";
import { evaluatorPath } from "../../compiler/compile.js";
import { ProxyWasmHost } from "./harness.js";
import { buildModule, CHAT, CORE_POLICY, IAM, mtlsProperties, POSTGRES } from "./fixtures.js";

let dir: string;
let modulePath: string;
let wasm: Uint8Array;
let sha: string;
/** The bare filter (evaluator + proxy-wasm code, no policy image), as /v1/filter.wasm serves it. */
let filter: Uint8Array;
let filterSha: string;
let server: Server;
let engineUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "zt-envoy-"));
  wasm = buildModule(CORE_POLICY).wasm;
  sha = createHash("sha256").update(wasm).digest("hex");
  filter = new Uint8Array(await readFile(evaluatorPath()));
  filterSha = createHash("sha256").update(filter).digest("hex");
  modulePath = join(dir, "policy.wasm");
  await writeFile(modulePath, wasm);
  // A real server standing in for the engine's GET /v1/module.wasm.
  server = createServer((req, res) => {
    if (req.url === "/v1/module.wasm" || req.url === "/v1/filter.wasm") {
      res.writeHead(200, { "content-type": "application/wasm" });
      res.end(Buffer.from(req.url === "/v1/module.wasm" ? wasm : filter));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  engineUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

type Obj = Record<string, unknown>;
const at = (o: unknown, ...path: Array<string | number>): unknown => path.reduce<unknown>((v, k) => (v as Obj)[k as string], o);

async function envoy(...argv: string[]): Promise<Obj> {
  return parse((await envoyConfigText(argv)).text) as Obj;
}

/** The configuration string carried by a filter, loaded into the module like Envoy would. */
function acceptedByModule(configuration: string): { host: ProxyWasmHost; decide: (peer: string) => number | null } {
  const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: engineUrl, [`outbound|8054||zt.hanzo.svc`]: engineUrl } });
  const plugin = host.startPlugin({ name: "zt", rootId: "zt", configuration });
  return {
    host,
    decide: (peer) => plugin.httpStream(mtlsProperties(peer, POSTGRES, 5432)).sendRequestHeaders([[":method", "GET"]], true).localReply?.status ?? null,
  };
}

describe("zt envoy-config", () => {
  it("prints HTTP and network filters loading a local module, fail closed, on V8", async () => {
    const out = await envoy("--module", modulePath);
    for (const [key, type] of [
      ["http_filters", "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
      ["network_filters", "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"],
    ] as const) {
      const filter = at(out, key, 0) as Obj;
      expect(filter.name).toBe(key === "http_filters" ? "envoy.filters.http.wasm" : "envoy.filters.network.wasm");
      expect(at(filter, "typed_config", "@type")).toBe(type);
      const config = at(filter, "typed_config", "config") as Obj;
      expect(config).toMatchObject({ name: "zt", root_id: "zt", failure_policy: "FAIL_CLOSED" });
      expect(at(config, "vm_config")).toEqual({ vm_id: "zt", runtime: "envoy.wasm.runtime.v8", code: { local: { filename: modulePath } } });
      expect(at(config, "configuration", "@type")).toBe("type.googleapis.com/google.protobuf.StringValue");
      const pluginConfig = JSON.parse(at(config, "configuration", "value") as string);
      expect(pluginConfig).toEqual({ mode: "enforce", policy_version: `sha256:${sha}` });
      const { decide } = acceptedByModule(at(config, "configuration", "value") as string);
      expect(decide(IAM)).toBeNull();
      expect(decide(CHAT)).toBe(403);
    }
    expect(out.clusters).toBeUndefined();
  });

  it("with --engine: the engine's filter module (stable sha256), sync and audit through the engine cluster", async () => {
    const out = await envoy("--engine", engineUrl, "--type", "http", "--mode", "observe", "--ingest-token", "tok-1", "--identity", POSTGRES, "--flush-ms", "500", "--sync-wait-s", "45");
    expect(out.network_filters).toBeUndefined();
    const config = at(out, "http_filters", 0, "typed_config", "config") as Obj;
    const port = Number(new URL(engineUrl).port);
    expect(at(config, "vm_config", "code")).toEqual({
      remote: { http_uri: { uri: `${engineUrl}/v1/filter.wasm`, cluster: "zt_engine", timeout: "10s" }, sha256: filterSha, retry_policy: { num_retries: 5 } },
    });
    const value = at(config, "configuration", "value") as string;
    expect(JSON.parse(value)).toEqual({
      mode: "observe",
      identity: POSTGRES,
      ingest_cluster: "zt_engine",
      ingest_authority: `127.0.0.1:${port}`,
      ingest_token: "tok-1",
      flush_interval_ms: 500,
      sync_cluster: "zt_engine",
      sync_authority: `127.0.0.1:${port}`,
      sync_wait_ms: 45000,
    });
    expect(at(out, "clusters", 0)).toMatchObject({
      name: "zt_engine",
      type: "STRICT_DNS",
      load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }] },
    });
    // The filter module takes this configuration: it polls the engine through the named
    // cluster at once, and ships its first record there.
    const host = ProxyWasmHost.load(filter, { clusters: { zt_engine: engineUrl } });
    const plugin = host.startPlugin({ name: "zt", rootId: "zt", configuration: value });
    host.advance(20);
    const poll = host.pendingHttpCalls()[0]!;
    expect(poll.cluster).toBe("zt_engine");
    expect(poll.headers).toEqual(expect.arrayContaining([[":path", "/v1/policy-image?wait=45"], [":authority", `127.0.0.1:${port}`], ["authorization", "Bearer tok-1"]]));
    // No policy until the first sync: observe mode lets traffic pass and records internal_error.
    expect(plugin.httpStream(mtlsProperties(CHAT, POSTGRES, 5432)).sendRequestHeaders([[":method", "GET"]], true).localReply).toBeNull();
    host.advance(500);
    expect(host.pendingHttpCalls().some((c) => c.headers.some(([k, v]) => k === ":path" && v === "/v1/audit/ingest"))).toBe(true);
  });

  it("with --engine --no-sync: the policy module itself, its sha256 as the version, no sync", async () => {
    const out = await envoy("--engine", engineUrl, "--type", "http", "--no-sync", "--no-audit");
    const config = at(out, "http_filters", 0, "typed_config", "config") as Obj;
    expect(at(config, "vm_config", "code", "remote", "http_uri", "uri")).toBe(`${engineUrl}/v1/module.wasm`);
    expect(at(config, "vm_config", "code", "remote", "sha256")).toBe(sha);
    const value = at(config, "configuration", "value") as string;
    expect(JSON.parse(value)).toEqual({ mode: "enforce", policy_version: `sha256:${sha}` });
    const { decide } = acceptedByModule(value);
    expect(decide(CHAT)).toBe(403);
    expect((await envoyConfigText(["--engine", engineUrl, "--no-sync"])).text).toContain("A policy update is a new module");
  });

  it("a local policy module with --engine starts from its policy and syncs from there", async () => {
    const out = await envoy("--module", modulePath, "--engine", engineUrl, "--type", "http", "--no-audit", "--ingest-token", "tok-2");
    const value = JSON.parse(at(out, "http_filters", 0, "typed_config", "config", "configuration", "value") as string) as Obj;
    expect(value).toMatchObject({ policy_version: `sha256:${sha}`, sync_cluster: "zt_engine", sync_token: "tok-2" });
    expect(value.ingest_cluster).toBeUndefined();
    await expect(envoyConfigText(["--url", `${engineUrl}/v1/filter.wasm`, "--ingest-cluster", "zt_engine"])).rejects.toThrow(/no policy image/);
  });

  it("takes --url with --sha256 without fetching, and refuses a mismatching --sha256", async () => {
    const out = await envoy("--url", "https://zt.example/v1/module.wasm", "--sha256", "a".repeat(64), "--ingest-cluster", "zt_engine");
    expect(at(out, "http_filters", 0, "typed_config", "config", "vm_config", "code", "remote", "sha256")).toBe("a".repeat(64));
    await expect(envoyConfigText(["--module", modulePath, "--sha256", "b".repeat(64)])).rejects.toThrow(/does not match/);
  });

  it("prints Istio WasmPlugins: AUTHZ phase, FAIL_CLOSE, url and sha256, pluginConfig", async () => {
    const { text } = await envoyConfigText(["--format", "istio", "--engine", "http://zt.hanzo.svc:8054", "--sha256", filterSha, "--selector", "app=postgres", "--namespace", "hanzo"]);
    const docs = parseAllDocuments(text).map((d) => d.toJS() as Obj);
    expect(docs.map((d) => at(d, "spec", "type"))).toEqual(["HTTP", "NETWORK"]);
    for (const d of docs) {
      expect(d).toMatchObject({ apiVersion: "extensions.istio.io/v1alpha1", kind: "WasmPlugin", metadata: { namespace: "hanzo" } });
      expect(d.spec).toMatchObject({
        selector: { matchLabels: { app: "postgres" } },
        url: "http://zt.hanzo.svc:8054/v1/filter.wasm",
        sha256: filterSha,
        pluginName: "zt",
        phase: "AUTHZ",
        failStrategy: "FAIL_CLOSE",
        pluginConfig: {
          mode: "enforce",
          ingest_cluster: "outbound|8054||zt.hanzo.svc",
          ingest_authority: "zt.hanzo.svc:8054",
          sync_cluster: "outbound|8054||zt.hanzo.svc",
          sync_authority: "zt.hanzo.svc:8054",
        },
      });
      // Istio hands pluginConfig to the module as JSON: the module must accept it.
      acceptedByModule(JSON.stringify(at(d, "spec", "pluginConfig")));
    }
    const local = parseAllDocuments((await envoyConfigText(["--format", "istio", "--module", modulePath, "--type", "network"])).text).map((d) => d.toJS() as Obj);
    expect(local).toHaveLength(1);
    expect(at(local[0], "spec", "url")).toBe(`file://${modulePath}`);
  });

  it("emits fail_open: false for Envoy before 1.34 on request", async () => {
    const out = await envoy("--module", modulePath, "--type", "network", "--legacy-fail-open");
    const config = at(out, "network_filters", 0, "typed_config", "config") as Obj;
    expect(config.fail_open).toBe(false);
    expect(config.failure_policy).toBeUndefined();
  });

  it("writes to -o and returns 0", async () => {
    const file = join(dir, "envoy.yaml");
    expect(await envoyConfigCommand(["--module", modulePath, "-o", file])).toBe(0);
    expect(await readFile(file, "utf8")).toContain(`sha256:${sha}`);
  });

  it.each([
    [[], /name the module/],
    [["--module", join(tmpdir(), "does-not-exist.wasm")], /cannot read --module/],
    [["--sha256", "XYZ", "--url", "http://x/m.wasm"], /64 lowercase hex/],
    [["--module", "MODULE", "--mode", "block"], /--mode must be one of/],
    [["--module", "MODULE", "--type", "udp"], /--type must be one of/],
    [["--module", "MODULE", "--identity", "spiffe://Bad/x"], /--identity/],
    [["--module", "MODULE", "--format", "istio", "--selector", "app"], /key=value/],
    [["--module", "MODULE", "--engine", "ftp://x"], /http:\/\/ or https:\/\//],
    [["--module", "MODULE", "--engine", "http://zt:8054", "--flush-ms", "5"], /--flush-ms/],
    [["--url", "http://x/m.wasm", "--sha256", "a".repeat(64)], /needs a cluster/],
    [["--module", "NOTWASM"], /not a Wasm module/],
    [["--engine", "http://127.0.0.1:1"], /cannot fetch/],
  ])("refuses bad input %j", async (argv, message) => {
    const notWasm = join(dir, "not.wasm");
    await writeFile(notWasm, "hello");
    const args = (argv as string[]).map((a) => (a === "MODULE" ? modulePath : a === "NOTWASM" ? notWasm : a));
    await expect(envoyConfigText(args)).rejects.toThrow(UsageError);
    await expect(envoyConfigText(args)).rejects.toThrow(message);
  });

  it("refuses a Wasm file that is not a ZT policy module", async () => {
    const other = join(dir, "other.wasm");
    await writeFile(other, new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await expect(envoyConfigText(["--module", other])).rejects.toThrow(/not a ZT policy module/);
  });
});
