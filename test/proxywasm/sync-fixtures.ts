// Fixtures for the policy sync tests: policy images as the engine serves them (the image
// taken out of a compiled module, its version and sha256), poll answers delivered to a VM,
// and a VM configured to sync.
import { createHash } from "node:crypto";
import { extractImage } from "../../host/engine/policy-image.js";
import { ProxyWasmHost, type HttpCallRecord, type Pairs, type Plugin } from "./harness.js";
import { buildModule } from "./fixtures.js";

export interface ServedImage {
  readonly version: string;
  readonly bytes: Uint8Array;
  readonly sha256: string;
  readonly wasm: Uint8Array;
}

export function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

export function servedImage(...policyTexts: string[]): ServedImage {
  const mod = buildModule(...policyTexts);
  const bytes = extractImage(mod.wasm);
  return { version: mod.version, bytes, sha256: sha256Hex(bytes), wasm: mod.wasm };
}

/** A 200 as GET /v1/policy-image sends it; `headers` replace the defaults they name. */
export function imageAnswer(img: { version: string; bytes: Uint8Array; sha256: string }, headers: Pairs = []): { status: number; headers: Pairs; body: Uint8Array } {
  const base: Pairs = [
    ["etag", `"${img.version}"`],
    ["x-zt-policy-version", img.version],
    ["x-zt-image-sha256", img.sha256],
    ["content-type", "application/vnd.zt.policy-image"],
  ];
  const names = new Set(headers.map(([k]) => k));
  return { status: 200, headers: [...base.filter(([k]) => !names.has(k)), ...headers], body: img.bytes };
}

export function header(call: HttpCallRecord, name: string): string | undefined {
  return call.headers.find(([k]) => k === name)?.[1];
}

/** The one poll in flight (a call on the sync path), or undefined. */
export function pendingPoll(host: ProxyWasmHost): HttpCallRecord | undefined {
  return host.pendingHttpCalls().find((c) => (header(c, ":path") ?? "").startsWith("/v1/policy-image"));
}

export function syncPlugin(wasm: Uint8Array, config: Record<string, unknown>, clock: "virtual" | "real" = "virtual"): { host: ProxyWasmHost; plugin: Plugin } {
  const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: "http://127.0.0.1:9" }, canary: false, clock });
  const plugin = host.startPlugin({ name: "zt", rootId: "zt", configuration: JSON.stringify({ sync_cluster: "zt_engine", ...config }) });
  return { host, plugin };
}
