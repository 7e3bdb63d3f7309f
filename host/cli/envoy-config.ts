// zt envoy-config: prints the Envoy filter fragment (or the Istio WasmPlugin manifests) that
// loads the ZT filter into sidecars. With --engine the sidecars load the engine's filter
// module (/v1/filter.wasm: the code, no policy, so its sha256 holds across policy writes)
// and follow every policy write by sync (GET /v1/policy-image). A local module (--module,
// written by zt build) or a URL with its sha256 carries a policy image to start from; its
// hash is that policy's version, stamped on records until the first sync.
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { parseSpiffeId } from "../../compiler/spiffe.js";
import { EXIT, UsageError } from "./io.js";
import { envoyFragment, type EngineEndpoint, type FilterType, type ModuleSource } from "../envoy/envoy-fragment.js";
import { pluginConfiguration, type FilterMode } from "../envoy/plugin-config.js";
import { wasmPlugins } from "../envoy/wasm-plugin.js";

export const ENVOY_CONFIG_USAGE = `usage: zt envoy-config (--module FILE | --url URL [--sha256 HEX] | --engine URL) [options]

module:
  --module FILE            local module written by "zt build" (sha256 and version read from it)
  --filename PATH          the module's path inside the sidecar (default: absolute --module path)
  --url URL                fetch the module from URL (default with --engine: <engine>/v1/filter.wasm,
                           the filter without a policy; with --no-sync: <engine>/v1/module.wasm)
  --sha256 HEX             sha256 of the module at --url (default: from --module, else fetched)
  --engine URL             the ZT engine, e.g. http://zt.hanzo.svc:8054 (cluster for fetch, sync, audit)
sync (with --engine; docs/envoy.md "How a policy update reaches the sidecars"):
  --sync-wait-s N          long-poll wait, 1-300 seconds (default 30)   --no-sync
filter:
  --type http|network|both (default both)   --mode enforce|observe (default enforce)
  --identity SPIFFE_ID     own identity (default: the sidecar's local certificate URI SAN)
  --name NAME  --root-id ID  --vm-id ID     (default zt)
audit:
  --ingest-cluster NAME    Envoy cluster of the engine (default zt_engine; Istio: outbound|port||host)
  --ingest-authority HOST  --ingest-token TOKEN | --ingest-token-file FILE
  --flush-ms N             --origin NAME            --no-audit
output:
  --format envoy|istio (default envoy)  --selector key=value (repeatable)  --namespace NS  -o FILE
  --legacy-fail-open       Envoy < 1.34: emit fail_open: false instead of failure_policy: FAIL_CLOSED`;

const HEX64 = /^[0-9a-f]{64}$/;

interface LoadedModule {
  readonly sha256: string;
  readonly bytes: number;
  /** True when it carries a policy image (a zt build module); false for the bare filter. */
  readonly policy: boolean;
}

/**
 * Checks that the bytes are a ZT module Envoy can load as a proxy-wasm 0.2.1 filter: a policy
 * module (zt build, with a zt.manifest), or the bare filter the engine serves at /v1/filter.wasm.
 */
export function inspectModule(bytes: Uint8Array, where: string): LoadedModule {
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(new Uint8Array(bytes));
  } catch (e) {
    throw new UsageError(`${where} is not a Wasm module: ${(e as Error).message}`);
  }
  const policy = WebAssembly.Module.customSections(module, "zt.manifest").length === 1;
  const exports = WebAssembly.Module.exports(module);
  if (!policy && !exports.some((e) => e.name === "zt_eval_service")) {
    throw new UsageError(`${where} is not a ZT policy module (no zt.manifest section); build one with "zt build"`);
  }
  if (!exports.some((e) => e.name === "proxy_abi_version_0_2_1" && e.kind === "function")) {
    throw new UsageError(`${where} does not export proxy_abi_version_0_2_1: it was built without the proxy-wasm filter`);
  }
  return { sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.length, policy };
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string, dflt: T): T {
  if (value === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(", ")} (got "${value}")`);
  return value as T;
}

function positiveInt(value: string | undefined, flag: string, lo: number, hi: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < lo || n > hi) throw new UsageError(`${flag} must be an integer from ${lo} to ${hi} (got "${value}")`);
  return n;
}

function engineEndpoint(url: string, cluster: string): EngineEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--engine must be a URL like http://zt.hanzo.svc:8054 (got "${url}")`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UsageError(`--engine must be http:// or https:// (got "${url}")`);
  const tls = u.protocol === "https:";
  return { cluster, host: u.hostname, port: u.port === "" ? (tls ? 443 : 80) : Number(u.port), tls };
}

async function fetchModule(url: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new UsageError(`cannot fetch ${url}: ${(e as Error).message}; pass --sha256 to skip fetching`);
  }
  if (!res.ok) throw new UsageError(`cannot fetch ${url}: HTTP ${res.status}; pass --sha256 to skip fetching`);
  return new Uint8Array(await res.arrayBuffer());
}

function selectors(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0 || eq === v.length - 1) throw new UsageError(`--selector must be key=value (got "${v}")`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** Builds the output text (YAML) from command-line arguments. Throws UsageError on bad input. */
export async function envoyConfigText(argv: string[]): Promise<{ text: string; output: string | undefined }> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      module: { type: "string" },
      filename: { type: "string" },
      url: { type: "string" },
      sha256: { type: "string" },
      engine: { type: "string" },
      type: { type: "string" },
      mode: { type: "string" },
      identity: { type: "string" },
      name: { type: "string" },
      "root-id": { type: "string" },
      "vm-id": { type: "string" },
      "ingest-cluster": { type: "string" },
      "ingest-authority": { type: "string" },
      "ingest-token": { type: "string" },
      "ingest-token-file": { type: "string" },
      "flush-ms": { type: "string" },
      origin: { type: "string" },
      "no-audit": { type: "boolean" },
      "no-sync": { type: "boolean" },
      "sync-wait-s": { type: "string" },
      "legacy-fail-open": { type: "boolean" },
      format: { type: "string" },
      selector: { type: "string", multiple: true },
      namespace: { type: "string" },
      output: { type: "string", short: "o" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return { text: ENVOY_CONFIG_USAGE + "\n", output: undefined };
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${ENVOY_CONFIG_USAGE}`);
  const format = oneOf(values.format, ["envoy", "istio"] as const, "--format", "envoy");
  const typeArg = oneOf(values.type, ["http", "network", "both"] as const, "--type", "both");
  const types: FilterType[] = typeArg === "both" ? ["http", "network"] : [typeArg];
  const mode = oneOf<FilterMode>(values.mode, ["enforce", "observe"], "--mode", "enforce");
  if (values.identity !== undefined) {
    const id = parseSpiffeId(values.identity);
    if (!id.ok) throw new UsageError(`--identity: ${id.error}`);
  }
  if (values.sha256 !== undefined && !HEX64.test(values.sha256)) throw new UsageError("--sha256 must be 64 lowercase hex digits");
  if (values.module === undefined && values.url === undefined && values.engine === undefined) {
    throw new UsageError(`name the module with --module FILE, --url URL or --engine URL\n${ENVOY_CONFIG_USAGE}`);
  }
  if (values.module !== undefined && values.url !== undefined && values.filename !== undefined) {
    throw new UsageError("--filename applies to a local module; with --url the sidecar fetches the module");
  }

  const name = values.name ?? "zt";
  const engineUrl = values.engine?.replace(/\/+$/, "");
  const defaultCluster = format === "istio" && engineUrl !== undefined ? istioCluster(engineUrl) : "zt_engine";
  const engine = engineUrl !== undefined ? engineEndpoint(engineUrl, format === "istio" ? defaultCluster : "zt_engine") : undefined;
  const sync = engine !== undefined && !values["no-sync"];
  const url = values.url ?? (values.module === undefined && engineUrl !== undefined ? `${engineUrl}/v1/${sync ? "filter" : "module"}.wasm` : undefined);

  // The module's sha256: from the local file, from --sha256, or fetched from the URL.
  let mod: LoadedModule;
  if (values.module !== undefined) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(values.module));
    } catch (e) {
      throw new UsageError(`cannot read --module ${values.module}: ${(e as Error).message}`);
    }
    mod = inspectModule(bytes, values.module);
    if (values.sha256 !== undefined && values.sha256 !== mod.sha256) {
      throw new UsageError(`--sha256 ${values.sha256} does not match --module ${values.module} (sha256 ${mod.sha256})`);
    }
  } else if (values.sha256 !== undefined) {
    mod = { sha256: values.sha256, bytes: -1, policy: url?.endsWith("/v1/filter.wasm") !== true };
  } else {
    mod = inspectModule(await fetchModule(url!), url!);
  }

  let source: ModuleSource;
  if (url !== undefined) {
    if (format === "envoy" && engine === undefined && values["ingest-cluster"] === undefined) {
      throw new UsageError("a remote module needs a cluster to fetch it from: pass --engine URL (or --ingest-cluster NAME naming an existing cluster)");
    }
    source = { kind: "remote", url, sha256: mod.sha256, cluster: engine?.cluster ?? values["ingest-cluster"]! };
  } else {
    source = { kind: "local", filename: values.filename ?? resolve(values.module!) };
  }

  let token = values["ingest-token"];
  if (values["ingest-token-file"] !== undefined) {
    if (token !== undefined) throw new UsageError("give --ingest-token or --ingest-token-file, not both");
    try {
      token = (await readFile(values["ingest-token-file"], "utf8")).trim();
    } catch (e) {
      throw new UsageError(`cannot read --ingest-token-file: ${(e as Error).message}`);
    }
  }
  if (token !== undefined && !/^[\x21-\x7e]{1,4096}$/.test(token)) throw new UsageError("the ingest token must be 1-4096 visible ASCII characters");

  if (!mod.policy && !sync) throw new UsageError("this module has no policy image (the engine's filter module): it denies everything until it syncs; use it with --engine (and without --no-sync)");
  const syncWait = positiveInt(values["sync-wait-s"], "--sync-wait-s", 1, 300);
  const audit = !values["no-audit"] && (values["ingest-cluster"] !== undefined || engine !== undefined);
  const configuration = pluginConfiguration({
    mode,
    ...(mod.policy ? { policyVersion: `sha256:${mod.sha256}` } : {}),
    ...(sync
      ? {
          syncCluster: engine!.cluster,
          syncAuthority: `${engine!.host}:${engine!.port}`,
          ...(token !== undefined && !audit ? { syncToken: token } : {}),
          ...(syncWait !== undefined ? { syncWaitMs: syncWait * 1000 } : {}),
        }
      : {}),
    ...(values.identity !== undefined ? { identity: values.identity } : {}),
    ...(audit ? { ingestCluster: values["ingest-cluster"] ?? engine!.cluster } : {}),
    ...(audit && (values["ingest-authority"] !== undefined || engine !== undefined)
      ? { ingestAuthority: values["ingest-authority"] ?? `${engine!.host}:${engine!.port}` }
      : {}),
    ...(audit && token !== undefined ? { ingestToken: token } : {}),
    ...(audit && values["flush-ms"] !== undefined ? { flushIntervalMs: positiveInt(values["flush-ms"], "--flush-ms", 10, 3_600_000)! } : {}),
    ...(values.origin !== undefined ? { origin: values.origin } : {}),
  });
  if (values.origin !== undefined && !/^[\x20-\x7e]{1,256}$/.test(values.origin)) throw new UsageError("--origin must be 1-256 printable ASCII characters");

  const header = [
    mod.policy
      ? `# zt envoy-config: module sha256:${mod.sha256}${mod.bytes >= 0 ? ` (${mod.bytes} bytes)` : ""}, policy version sha256:${mod.sha256}`
      : `# zt envoy-config: filter module sha256:${mod.sha256}${mod.bytes >= 0 ? ` (${mod.bytes} bytes)` : ""}, no policy until its first sync`,
    sync
      ? "# Policy writes reach the sidecars by sync (GET /v1/policy-image). Re-run and apply only for a new filter (an engine upgrade)."
      : "# A policy update is a new module: new sha256, new version. Re-run this command and apply.",
  ];
  let body: string;
  if (format === "envoy") {
    header.push("# http_filters: before envoy.filters.http.router; network_filters: before envoy.filters.network.tcp_proxy");
    body = stringify(
      envoyFragment({
        types,
        name,
        rootId: values["root-id"] ?? name,
        vmId: values["vm-id"] ?? name,
        source,
        configuration,
        ...(engine ? { engine } : {}),
        legacyFailOpenField: values["legacy-fail-open"] === true,
      }),
      { lineWidth: 0 },
    );
  } else {
    const istioUrl = url ?? `file://${values.filename ?? resolve(values.module!)}`;
    const docs = wasmPlugins({
      types,
      name,
      ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
      selector: selectors(values.selector ?? []),
      url: istioUrl,
      sha256: mod.sha256,
      pluginName: values["root-id"] ?? name,
      configuration,
    });
    body = docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
  }
  return { text: header.join("\n") + "\n" + body, output: values.output };
}

/** Istio names the outbound cluster of a service `outbound|<port>||<host>`. */
function istioCluster(engineUrl: string): string {
  const e = engineEndpoint(engineUrl, "");
  return `outbound|${e.port}||${e.host}`;
}

/** `zt envoy-config` entry point; returns the exit code. */
export async function envoyConfigCommand(argv: string[]): Promise<number> {
  const { text, output } = await envoyConfigText(argv);
  if (output !== undefined) await writeFile(output, text);
  else process.stdout.write(text);
  return EXIT.ok;
}
