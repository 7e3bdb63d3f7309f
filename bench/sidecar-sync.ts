// Benchmark section "sidecar-sync": how fast a policy write reaches running filters, what a
// swap costs a filter, and what a held long poll costs the engine.
//   1. write -> all 8 VMs: an engine process (1,000-rule policy set) and 8 filter VMs (one
//      per simulated Envoy worker, in this process, each with its own long poll); each write
//      allows a new port for a probe pair, and the time from the write's 200 until every VM
//      decides with the new version is taken (p50 / p99 over the writes), beside the anchor:
//      OPA's bundle polling (min_delay 60 s, max_delay 120 s by default).
//   2. verify-and-swap: proxy_on_http_call_response for a 200 carrying a 1k- or 10k-rule
//      image (the host's copy into the module, the structural check, SHA-256, the install),
//      and SHA-256 alone on the same bytes.
//   3. held polls: 10,000 long polls held by an engine process (seed policies), its RSS and
//      heap before and after, per poll; then one write releasing all of them.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compilePolicySet } from "../compiler/compile.js";
import { buildPolicySet } from "../compiler/load.js";
import { parsePolicyText } from "../compiler/parse.js";
import { extractImage } from "../host/engine/policy-image.js";
import { hostImports } from "../host/engine/runtime.js";
import { ProxyWasmHost, type Plugin } from "../test/proxywasm/harness.js";
import { quantile, round } from "./measure.js";
import { generateRules, policyYaml } from "./policy-gen.js";
import type { BenchFn, Cell } from "./types.js";

const TOKEN = "bench-admin-token-0123456789";
const VMS = 8;
const SRC = "spiffe://hanzo.ai/bench/probe-src";
const DST = "spiffe://hanzo.ai/bench/probe-dst";

interface Engine {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startEngine(policyDir: string): Promise<Engine> {
  const entry = fileURLToPath(new URL("./sync-engine.js", import.meta.url));
  const child = spawn(process.execPath, ["--expose-gc", entry, policyDir], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (c) => reject(new Error(`sync engine exited ${c}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stop: () =>
      new Promise((r) => {
        child.once("exit", () => r());
        child.kill("SIGTERM");
      }),
  };
}

function probePolicy(port: number): string {
  return `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: probe
spec:
  rules:
    - name: probe
      from:
        spiffe: "${SRC}"
      to:
        - spiffe: "${DST}"
          ports: [${port}]
  defaultAction: DENY
`;
}

function allows(p: Plugin, port: number): boolean {
  const s = p.httpStream({ "connection.uri_san_peer_certificate": SRC, "connection.uri_san_local_certificate": DST, "destination.port": BigInt(port) });
  const out = s.sendRequestHeaders([[":method", "GET"], [":path", "/"]], true);
  s.complete();
  return out.localReply === null;
}

async function writeToVms(quick: boolean, notes: string[]): Promise<Array<Record<string, Cell>>> {
  const dir = mkdtempSync(join(tmpdir(), "zt-bench-sync-pol-"));
  writeFileSync(join(dir, "rules.yaml"), policyYaml(generateRules(1000)));
  const engine = await startEngine(dir);
  try {
    const mod = await fetch(engine.url + "/v1/module.wasm");
    const wasm = new Uint8Array(await mod.arrayBuffer());
    const version = mod.headers.get("x-zt-policy-version")!;
    const vms = Array.from({ length: VMS }, (_, i) => {
      const host = ProxyWasmHost.load(wasm, { clusters: { zt_engine: engine.url }, clock: "real", canary: false });
      const plugin = host.startPlugin({ name: "zt", rootId: "zt", configuration: JSON.stringify({ sync_cluster: "zt_engine", ingest_token: TOKEN, policy_version: version, origin: `bench/vm-${i}` }) });
      return { host, plugin };
    });
    const pump = setInterval(() => {
      for (const vm of vms) {
        vm.host.advance(1);
        vm.host.pumpHttpCalls();
      }
    }, 1);
    const writes = quick ? 20 : 120;
    const fromOk: number[] = [];
    const fromSent: number[] = [];
    try {
      // Every VM holds a poll before the first write.
      while (!vms.every((vm) => vm.host.pendingHttpCalls().length === 1)) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 200));
      for (let k = 0; k < writes; k++) {
        const port = 10000 + k;
        const sent = performance.now();
        const res = await fetch(engine.url + "/v1/policies/probe", { method: "PUT", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/yaml" }, body: probePolicy(port) });
        const ok = performance.now();
        if (!res.ok) throw new Error(`write ${k}: HTTP ${res.status} ${await res.text()}`);
        const pending = new Set(vms);
        while (pending.size > 0) {
          for (const vm of [...pending]) if (allows(vm.plugin, port)) pending.delete(vm);
          if (pending.size > 0) await new Promise((r) => setImmediate(r));
        }
        const done = performance.now();
        fromOk.push(Math.max(0, done - ok));
        fromSent.push(done - sent);
      }
    } finally {
      clearInterval(pump);
    }
    const swaps = vms.reduce((n, vm) => n + Number(vm.host.metric("zt.sync.swaps")), 0);
    notes.push(`${writes} writes x ${VMS} VMs: ${swaps} swaps, ${vms.reduce((n, vm) => n + Number(vm.host.metric("zt.sync.refused") ?? 0), 0)} refused; the long poll is usually released before the write's 200 reaches the client (0 = every VM had the new version by then)`);
    const a = [...fromOk].sort((x, y) => x - y);
    const b = [...fromSent].sort((x, y) => x - y);
    return [
      { measure: "write 200 -> all 8 VMs decide with it (1,000 rules)", p50_ms: round(quantile(a, 0.5), 2), p99_ms: round(quantile(a, 0.99), 2), writes, anchor: "" },
      { measure: "write sent -> all 8 VMs (incl. compile and swap on the engine)", p50_ms: round(quantile(b, 0.5), 2), p99_ms: round(quantile(b, 0.99), 2), writes, anchor: "" },
      { measure: "OPA bundle polling, defaults (min_delay 60 s, max_delay 120 s)", p50_ms: 90_000, p99_ms: 119_400, writes: null, anchor: "uniform 60-120 s delay, from OPA's defaults" },
    ];
  } finally {
    await engine.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function imageOf(text: string): { version: string; bytes: Uint8Array; sha256: string } {
  const parsed = parsePolicyText(text, "bench.yaml");
  if (!parsed.ok) throw new Error("bench policy does not parse");
  const set = buildPolicySet(parsed.policies);
  if (!set.ok) throw new Error("bench policy set invalid");
  const mod = compilePolicySet(set.set);
  const bytes = extractImage(mod.wasm);
  return { version: mod.version, bytes, sha256: createHashHex(bytes) };
}

function createHashHex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

function swapCost(rules: number, quick: boolean): Array<Record<string, Cell>> {
  const base = policyYaml(generateRules(rules));
  const a = imageOf(base);
  const b = imageOf(base + "---\n" + probePolicy(7));
  const evaluator = readFileSync(fileURLToPath(new URL("../../build/evaluator.wasm", import.meta.url)));
  const host = ProxyWasmHost.load(new Uint8Array(evaluator), { clusters: { zt_engine: "http://127.0.0.1:9" }, canary: false });
  host.startPlugin({ name: "zt", rootId: "zt", configuration: JSON.stringify({ sync_cluster: "zt_engine" }) });
  host.advance(20);
  const n = quick ? 20 : 100;
  // Warm-up: V8 compiles Wasm in a baseline tier first and optimises hot functions later.
  const WARM = 40;
  const times: number[] = [];
  for (let i = 0; i < n + WARM; i++) {
    const img = i % 2 === 0 ? a : b;
    const call = host.pendingHttpCalls()[0]!;
    const headers: Array<[string, string]> = [[":status", "200"], ["x-zt-policy-version", img.version], ["x-zt-image-sha256", img.sha256]];
    const t0 = performance.now();
    host.vm.deliverHttpCallResponse(call, { headers, body: img.bytes, trailers: [] });
    const dt = performance.now() - t0;
    if (i >= WARM) times.push(dt);
  }
  if (host.metric("zt.sync.swaps") !== BigInt(n + WARM)) throw new Error(`swap bench: ${host.metric("zt.sync.swaps")} swaps, ${host.metric("zt.sync.refused")} refused`);
  times.sort((x, y) => x - y);
  // SHA-256 alone, in a module instance of its own.
  const module = new WebAssembly.Module(evaluator);
  const inst = new WebAssembly.Instance(module, hostImports(module));
  const ex = inst.exports as { memory: WebAssembly.Memory; _initialize(): void; zt_sha256(p: number, l: number, o: number): void };
  ex._initialize();
  const at = ex.memory.buffer.byteLength;
  ex.memory.grow(Math.ceil((a.bytes.length + 4096) / 65536));
  new Uint8Array(ex.memory.buffer).set(a.bytes, at);
  const sha: number[] = [];
  for (let i = 0; i < n + WARM; i++) {
    const t0 = performance.now();
    ex.zt_sha256(at, a.bytes.length, at + a.bytes.length + 64);
    if (i >= WARM) sha.push(performance.now() - t0);
  }
  sha.sort((x, y) => x - y);
  return [
    { measure: `verify-and-swap, ${rules} rules (${(a.bytes.length / 1024).toFixed(0)} KiB image)`, p50_ms: round(quantile(times, 0.5), 3), p99_ms: round(quantile(times, 0.99), 3), writes: n, anchor: "" },
    { measure: `  of which SHA-256 alone`, p50_ms: round(quantile(sha, 0.5), 3), p99_ms: round(quantile(sha, 0.99), 3), writes: n, anchor: "" },
  ];
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url + "/metrics")).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

async function heldPolls(notes: string[]): Promise<Array<Record<string, Cell>>> {
  const dir = mkdtempSync(join(tmpdir(), "zt-bench-held-"));
  mkdirSync(join(dir, "p"));
  const engine = await startEngine(join(dir, "p"));
  const sockets: Socket[] = [];
  // 10,000 in --quick too: the figure the issue asks for, and it takes seconds.
  const count = 10_000;
  try {
    const version = ((await (await fetch(engine.url + "/v1/policies")).json()) as { version: string }).version;
    const port = Number(new URL(engine.url).port);
    const request = `GET /v1/policy-image?wait=300 HTTP/1.1\r\nhost: zt\r\nauthorization: Bearer ${TOKEN}\r\nif-none-match: "${version}"\r\n\r\n`;
    const settle = async (): Promise<void> => {
      engine.child.kill("SIGUSR2");
      await new Promise((r) => setTimeout(r, 500));
    };
    await settle();
    const rss0 = rssBytes(engine.child.pid!);
    const heap0 = await metric(engine.url, "nodejs_heap_size_used_bytes");
    let answered = 0;
    for (let i = 0; i < count; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, count - i) }, () => new Promise<void>((resolve, reject) => {
          const s = connect(port, "127.0.0.1", () => {
            s.write(request);
            resolve();
          });
          s.on("error", reject);
          s.on("data", (d: Buffer) => {
            if (d.toString("latin1").startsWith("HTTP/1.1 200")) answered++;
          });
          sockets.push(s);
        })),
      );
    }
    while ((await metric(engine.url, "zt_policy_image_polls_waiting")) < count) await new Promise((r) => setTimeout(r, 50));
    await settle();
    const rss1 = rssBytes(engine.child.pid!);
    const heap1 = await metric(engine.url, "nodejs_heap_size_used_bytes");
    // One write releases every held poll.
    const t0 = performance.now();
    await fetch(engine.url + "/v1/policies/probe", { method: "PUT", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/yaml" }, body: probePolicy(2) });
    while (answered < count) await new Promise((r) => setTimeout(r, 5));
    const released = performance.now() - t0;
    notes.push(`${count} held polls: engine RSS ${(rss0 / 2 ** 20).toFixed(1)} -> ${(rss1 / 2 ** 20).toFixed(1)} MiB, JS heap ${(heap0 / 2 ** 20).toFixed(1)} -> ${(heap1 / 2 ** 20).toFixed(1)} MiB; one write released all ${count} (200 with the image) in ${released.toFixed(0)} ms`);
    return [
      { measure: `engine RSS per held poll (${count} held)`, p50_ms: null, p99_ms: null, writes: null, anchor: `${Math.round((rss1 - rss0) / count)} bytes` },
      { measure: `engine JS heap per held poll (${count} held)`, p50_ms: null, p99_ms: null, writes: null, anchor: `${Math.round((heap1 - heap0) / count)} bytes` },
      { measure: `one write releasing ${count} held polls (until all have the image)`, p50_ms: round(released, 1), p99_ms: null, writes: 1, anchor: "" },
    ];
  } finally {
    for (const s of sockets) s.destroy();
    await engine.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const run: BenchFn = async (opts) => {
  const notes: string[] = [];
  const rows: Array<Record<string, Cell>> = [];
  rows.push(...(await writeToVms(opts.quick, notes)));
  rows.push(...swapCost(1000, opts.quick));
  if (!opts.quick) rows.push(...swapCost(10000, opts.quick));
  rows.push(...(await heldPolls(notes)));
  const p99 = rows[0]!.p99_ms as number;
  const swap1k = rows[3]!.p50_ms as number;
  notes.push(`goals: write -> all VMs p99 under 1 s: ${p99 < 1000 ? "met" : "NOT met"} (${p99} ms); swap of a 1k-rule image under 1 ms: ${swap1k < 1 ? "met" : "NOT met"} (${swap1k} ms)`);
  notes.push("the VMs run in the JS proxy-wasm harness (this process), the engine in a child process; other jobs share the machine's 2 cores: wall-clock figures, read them as upper bounds");
  return { name: "sidecar-sync", title: "Policy sync: write -> sidecar VMs, verify-and-swap, held long polls", rows, notes };
};
