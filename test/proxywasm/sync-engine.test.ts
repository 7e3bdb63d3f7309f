// Policy sync end to end: a real engine process (`zt serve`) and several filter VMs, one per
// simulated Envoy worker, each keeping its own long poll through proxy_http_call. A policy
// write is enforced by every VM; an image tampered with on the way (body changed, digest
// kept) or of a format the filter does not read is refused and the old decisions stand;
// the engine stopped, the VMs keep deciding (fail static), and resume when it is back; the
// records the VMs ship name the version that decided, and GET /v1/sidecars sees them
// converge; filter and engine agree after the swaps.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyWasmHost, type Plugin } from "./harness.js";
import { CHAT, CORE_POLICY, GATEWAY, IAM, mtlsProperties, POSTGRES, REDIS } from "./fixtures.js";
import { type EngineProcess, freePort, startEngineProcess } from "./engine-process.js";

const TOKEN = "sync-e2e-admin-token-0123456789";
const WORKERS = 4;
const IDS = [IAM, GATEWAY, CHAT, POSTGRES, REDIS, "spiffe://hanzo.ai/hanzo-k8s/hanzo/search"];

const allow = (name: string, from: string, to: string, port: number): string => `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: ${name}
spec:
  rules:
    - name: r
      from:
        spiffe: "${from}"
      to:
        - spiffe: "${to}"
          ports: [${port}]
  defaultAction: DENY
`;

interface Vm {
  host: ProxyWasmHost;
  plugin: Plugin;
}

let dir: string;
let port: number;
let engine: EngineProcess;
let relay: Server;
let relayMode: "pass" | "tamper" | "format" = "pass";
let vms: Vm[];
let odd: Vm;
let pump: NodeJS.Timeout;

async function api<T>(method: string, path: string, body?: string): Promise<{ status: number; body: T }> {
  const r = await fetch(engine.url + path, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { "content-type": path.startsWith("/v1/policies") ? "application/yaml" : "application/json" } : {}) }, ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  return { status: r.status, body: (text && r.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text) as T };
}

function decides(vm: Vm, src: string, dst: string, p: number): boolean {
  const s = vm.plugin.httpStream(mtlsProperties(src, dst, p));
  const out = s.sendRequestHeaders([[":method", "GET"], [":path", "/"]], true);
  s.complete();
  return out.localReply === null;
}

async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 20));
}

function startVm(cluster: string, origin: string, version: string, wasm: Uint8Array): Vm {
  const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: engine.url, relay: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` }, clock: "real", canary: false });
  const plugin = host.startPlugin({
    name: "zt",
    rootId: "zt",
    configuration: JSON.stringify({
      mode: "enforce",
      sync_cluster: cluster,
      ingest_cluster: "zt_engine",
      ingest_token: TOKEN,
      policy_version: version,
      origin,
      flush_interval_ms: 100,
      sync_wait_ms: 5000,
      sync_retry_ms: 200,
      sync_retry_max_ms: 1000,
    }),
  });
  return { host, plugin };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zt-sidecar-sync-"));
  chmodSync(dir, 0o711);
  mkdirSync(join(dir, "policies"));
  writeFileSync(join(dir, "policies", "core.yaml"), CORE_POLICY);
  port = await freePort();
  engine = await startEngineProcess({ port, policyDir: join(dir, "policies"), dataDir: join(dir, "data"), token: TOKEN });
  // A relay in front of the engine that can damage the images it passes on.
  relay = createServer((req, res) => {
    const up = request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on("data", (c: Buffer) => chunks.push(c));
      upRes.on("end", () => {
        let body = Buffer.concat(chunks);
        const headers = { ...upRes.headers };
        if (upRes.statusCode === 200 && req.url?.startsWith("/v1/policy-image") && relayMode !== "pass") {
          body = Buffer.from(body);
          if (relayMode === "tamper") body[body.length - 20] ^= 0xff;
          else {
            body.writeUInt32LE(4, 4);
            headers["x-zt-image-sha256"] = createHash("sha256").update(body).digest("hex");
          }
          headers["content-length"] = String(body.length);
        }
        res.writeHead(upRes.statusCode!, headers);
        res.end(body);
      });
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  const mod = await fetch(engine.url + "/v1/module.wasm");
  const wasm = new Uint8Array(await mod.arrayBuffer());
  const version = mod.headers.get("x-zt-policy-version")!;
  vms = Array.from({ length: WORKERS }, (_, i) => startVm("zt_engine", `envoy/worker-${i}`, version, wasm));
  odd = startVm("relay", "envoy/behind-relay", version, wasm);
  pump = setInterval(() => {
    for (const vm of [...vms, odd]) {
      vm.host.advance(10);
      vm.host.pumpHttpCalls();
    }
  }, 10);
}, 120_000);

afterAll(async () => {
  clearInterval(pump);
  await new Promise<void>((r) => relay?.close(() => r()));
  await engine?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("policy sync against a real engine process", () => {
  it("a policy write is enforced by every VM, and the records name the new version", async () => {
    for (const vm of vms) expect(decides(vm, CHAT, POSTGRES, 5432)).toBe(false);
    const w = await api<{ version: string }>("PUT", "/v1/policies/chat-db", allow("chat-db", CHAT, POSTGRES, 5432));
    expect(w.status).toBe(201);
    await until(() => vms.every((vm) => decides(vm, CHAT, POSTGRES, 5432)));
    for (const vm of vms) expect(vm.host.metric("zt.sync.swaps")).toBe(1n);
    // The sidecars ship records (every 100 ms); the engine sees every worker on the new version.
    await until(async () => {
      const s = await api<{ sidecars: Array<{ origin: string; state: string }> }>("GET", "/v1/sidecars");
      return vms.every((_, i) => s.body.sidecars.some((x) => x.origin === `envoy/worker-${i}` && x.state === "converged"));
    });
    // Every record decided by the new rule names the new version.
    const audit = await api<{ records: Array<{ policy_version: string; decision: string; origin: string }> }>("GET", "/v1/audit?policy=chat-db%2Fr&limit=500");
    expect(audit.status).toBe(200);
    expect(new Set(audit.body.records.map((r) => r.origin))).toEqual(new Set(vms.map((_, i) => `envoy/worker-${i}`)));
    for (const r of audit.body.records) expect(r).toMatchObject({ policy_version: w.body.version, decision: "ALLOW" });
  });

  it("filter and engine agree after the swap (generated requests)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...IDS), fc.constantFrom(...IDS), fc.constantFrom(5432, 6379, 8000, 4000, 443), fc.nat(WORKERS - 1), async (src, dst, p, w) => {
        const r = await api<{ decision: string; enforced: boolean }>("POST", "/v1/evaluate", JSON.stringify({ source: { spiffe_id: src }, destination: { spiffe_id: dst, port: p } }));
        expect(r.status).toBe(200);
        const passes = r.body.decision === "ALLOW" || !r.body.enforced;
        expect(decides(vms[w]!, src, dst, p), JSON.stringify({ src, dst, p, engine: r.body })).toBe(passes);
      }),
      { numRuns: 120 },
    );
  });

  it("refuses a tampered image and one of an unknown format: the old decisions stand", async () => {
    await until(() => decides(odd, CHAT, POSTGRES, 5432));
    // REDIS is in observe mode by the policy's rollout: use enforced destinations here.
    expect(decides(odd, IAM, CHAT, 7000)).toBe(false);
    relayMode = "tamper";
    await api("PUT", "/v1/policies/iam-chat", allow("iam-chat", IAM, CHAT, 7000));
    await until(() => vms.every((vm) => decides(vm, IAM, CHAT, 7000)));
    await until(() => odd.host.metric("zt.sync.refused") === 1n);
    expect(decides(odd, IAM, CHAT, 7000)).toBe(false);
    expect(decides(odd, CHAT, POSTGRES, 5432)).toBe(true);
    expect(odd.host.vm.logs.some((l) => /sha256 differs from the digest the engine announced/.test(l.message))).toBe(true);

    relayMode = "format";
    await api("PUT", "/v1/policies/iam-chat", allow("iam-chat", IAM, CHAT, 7001));
    await until(() => vms.every((vm) => decides(vm, IAM, CHAT, 7001)));
    await until(() => odd.host.metric("zt.sync.refused") === 2n);
    expect(decides(odd, IAM, CHAT, 7001)).toBe(false);
    expect(odd.host.vm.logs.some((l) => /format this evaluator does not read/.test(l.message))).toBe(true);
    expect(odd.host.failed).toBe(false);

    relayMode = "pass";
    await api("PUT", "/v1/policies/iam-chat", allow("iam-chat", IAM, CHAT, 7002));
    await until(() => decides(odd, IAM, CHAT, 7002));
  });

  it("the engine stopped: every VM keeps deciding and backs off; restarted: they resume", async () => {
    await engine.stop();
    await until(() => vms.every((vm) => (vm.host.metric("zt.sync.failures") ?? 0n) >= 2n));
    for (const vm of vms) {
      expect(decides(vm, CHAT, POSTGRES, 5432)).toBe(true);
      expect(decides(vm, IAM, CHAT, 7002)).toBe(true);
      expect(decides(vm, CHAT, GATEWAY, 4000)).toBe(true);
      expect(vm.host.failed).toBe(false);
    }
    engine = await startEngineProcess({ port, policyDir: join(dir, "policies"), dataDir: join(dir, "data"), token: TOKEN });
    const w = await api<{ version: string }>("DELETE", "/v1/policies/chat-db");
    expect(w.status).toBe(200);
    await until(() => vms.every((vm) => !decides(vm, CHAT, POSTGRES, 5432)));
    for (const vm of vms) expect(vm.host.metric("zt.sync.image_age_seconds")).toBe(0n);
  });
});
