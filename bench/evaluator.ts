// Decision cost at 10 / 1,000 / 10,000 / 100,000 rules: the Wasm module through the host
// runtime (single and batch), the reference evaluator, a JS Map floor, and the peers on
// the same rules and requests in the same run: Cedar (cedar-wasm, preparsed policy set,
// statefulIsAuthorized) and casbin (enforceSync).
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { newEnforcer, newModelFromString, StringAdapter } from "casbin";
import { compilePolicySet } from "../compiler/compile.js";
import { buildPolicySet } from "../compiler/load.js";
import type { PolicySet, ServiceRequest } from "../compiler/model.js";
import { parsePolicyText } from "../compiler/parse.js";
import { evaluateServiceReference } from "../compiler/reference.js";
import { PolicyRuntime } from "../host/engine/runtime.js";
import { measure, round, type Timing } from "./measure.js";
import { generateRequests, generateRules, type GeneratedRule, policyYaml } from "./policy-gen.js";
import type { BenchFn, BenchSection, Cell } from "./types.js";

const REQUESTS = 4096;

function row(size: number, impl: string, t: Timing, wasm: Timing | null, note = ""): Record<string, Cell> {
  return {
    rules: size,
    implementation: impl,
    ns_median: round(t.nsMedian),
    ns_p99: round(t.nsP99),
    decisions_per_s: Math.round(t.opsPerSec),
    x_slower_than_wasm: wasm ? round(t.nsMedian / wasm.nsMedian, 2) : null,
    note: note || (t.capped ? `time-capped: ${t.samples} samples` : ""),
  };
}

async function cedarSetup(rules: readonly GeneratedRule[]): Promise<(r: ServiceRequest) => boolean> {
  const text = rules
    .map((r) => `${r.deny ? "forbid" : "permit"}(principal == Workload::${JSON.stringify(r.from)}, action == Action::"connect", resource == Workload::${JSON.stringify(r.to)}) when { context.port == ${r.port} };`)
    .join("\n");
  const parsed = cedar.preparsePolicySet("mesh", { staticPolicies: text });
  if (parsed.type !== "success") throw new Error(`cedar: ${JSON.stringify(parsed)}`);
  const action = { type: "Action", id: "connect" };
  return (r) => {
    const a = cedar.statefulIsAuthorized({
      principal: { type: "Workload", id: r.source },
      action,
      resource: { type: "Workload", id: r.destination },
      context: { port: r.port },
      entities: [],
      preparsedPolicySetId: "mesh",
    });
    return a.type === "success" && a.response.decision === "allow";
  };
}

const CASBIN_MODEL = `
[request_definition]
r = sub, obj, port
[policy_definition]
p = sub, obj, port, eft
[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.port == p.port
`;

async function casbinSetup(rules: readonly GeneratedRule[]): Promise<(r: ServiceRequest) => boolean> {
  const lines = rules.map((r) => `p, ${r.from}, ${r.to}, ${r.port}, ${r.deny ? "deny" : "allow"}`).join("\n");
  const e = await newEnforcer(newModelFromString(CASBIN_MODEL), new StringAdapter(lines));
  return (r) => e.enforceSync(r.source, r.destination, String(r.port));
}

function check(name: string, got: (r: ServiceRequest) => boolean, set: PolicySet, reqs: readonly ServiceRequest[]): void {
  // Every contender must agree with the reference on the benchmark's requests.
  for (const r of reqs.slice(0, 200)) {
    if (got(r) !== evaluateServiceReference(set, r).allow) throw new Error(`${name} disagrees with the reference on ${JSON.stringify(r)}`);
  }
}

export const run: BenchFn = async (opts) => {
  const sizes = opts.quick ? [10, 1000] : [10, 1000, 10000, 100000];
  const rows: Array<Record<string, Cell>> = [];
  const build: Array<Record<string, Cell>> = [];
  const notes: string[] = [];
  const wasmBySize = new Map<number, Timing>();
  const floorBySize = new Map<number, Timing>();
  const peerBySize = new Map<string, Timing>();
  const peerMs = opts.quick ? 300 : 2000;

  for (const size of sizes) {
    const rules = generateRules(size);
    const yamlText = policyYaml(rules);
    let t0 = performance.now();
    const parsed = parsePolicyText(yamlText, "bench.yaml");
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
    const s = buildPolicySet(parsed.policies);
    if (!s.ok) throw new Error("bench policy set invalid");
    const parseMs = performance.now() - t0;
    t0 = performance.now();
    const mod = compilePolicySet(s.set);
    const compileMs = performance.now() - t0;
    t0 = performance.now();
    const rt = await PolicyRuntime.load(mod.wasm);
    const loadMs = performance.now() - t0;
    build.push({ rules: size, parse_ms: round(parseMs), compile_link_ms: round(compileMs), load_ms: round(loadMs), module_bytes: mod.wasm.length });

    const reqs = generateRequests(rules, REQUESTS);
    const mask = REQUESTS - 1;
    check("wasm", (r) => rt.evaluateService(r).allow, s.set, reqs);

    const wasm = measure((i) => rt.evaluateService(reqs[i & mask]!), { batch: 256, maxMs: opts.quick ? 300 : 1500 });
    wasmBySize.set(size, wasm);
    rows.push(row(size, "zt wasm (host runtime)", wasm, null));

    const batches: ServiceRequest[][] = [];
    for (let b = 0; b < REQUESTS; b += 1000) batches.push(reqs.slice(b, b + 1000));
    const batch = measure((i) => rt.evaluateServiceBatch(batches[i % batches.length]!), { batch: 1, maxMs: opts.quick ? 300 : 1500, warmup: 20 });
    rows.push(row(size, "zt wasm batch of 1000", { ...batch, nsMedian: batch.nsMedian / 1000, nsP99: batch.nsP99 / 1000, opsPerSec: batch.opsPerSec * 1000 }, wasm));

    const map = new Map<string, boolean>();
    for (const r of rules) map.set(`${r.from}|${r.to}|${r.port}`, !r.deny);
    const floor = measure((i) => {
      const r = reqs[i & mask]!;
      return map.get(`${r.source}|${r.destination}|${r.port}`) === true;
    }, { batch: 256, maxMs: opts.quick ? 300 : 1500 });
    floorBySize.set(size, floor);
    rows.push(row(size, "JS Map exact key (floor)", floor, wasm));

    const ref = measure((i) => evaluateServiceReference(s.set, reqs[i & mask]!), { batch: size >= 10000 ? 1 : 64, maxMs: peerMs });
    rows.push(row(size, "reference evaluator (TS scan)", ref, wasm));

    for (const [name, setup] of [["cedar-wasm statefulIsAuthorized", cedarSetup], ["casbin enforceSync", casbinSetup]] as const) {
      t0 = performance.now();
      const peer = await setup(rules);
      const setupMs = performance.now() - t0;
      check(name, peer, s.set, reqs.slice(0, size >= 10000 ? 20 : 200));
      const t = measure((i) => peer(reqs[i & mask]!), { batch: size >= 1000 ? 1 : 32, maxMs: peerMs, warmup: size >= 10000 ? 2 : 200 });
      peerBySize.set(`${name}@${size}`, t);
      rows.push(row(size, name, t, wasm, `setup ${round(setupMs)} ms${t.capped ? `; time-capped at ${peerMs} ms (${t.samples} samples)` : ""}`));
    }
  }

  const w10 = wasmBySize.get(10)!;
  const wMax = wasmBySize.get(sizes[sizes.length - 1]!)!;
  const largest = sizes[sizes.length - 1]!;
  notes.push(`target: median <= 1000 ns at ${largest} rules: ${round(wMax.nsMedian)} ns -> ${wMax.nsMedian <= 1000 ? "met" : "MISSED"}`);
  notes.push(`target: ${largest}-rule time <= 1.5 x 10-rule time: ${round(wMax.nsMedian / w10.nsMedian, 2)} x -> ${wMax.nsMedian <= 1.5 * w10.nsMedian ? "met" : "MISSED"}`);
  for (const size of sizes) {
    const ratio = wasmBySize.get(size)!.nsMedian / floorBySize.get(size)!.nsMedian;
    notes.push(`target: within 3 x the JS Map floor at ${size} rules: ${round(ratio, 2)} x -> ${ratio <= 3 ? "met" : "MISSED"}`);
  }
  const cedar10 = peerBySize.get("cedar-wasm statefulIsAuthorized@10")!;
  const casbin10 = peerBySize.get("casbin enforceSync@10")!;
  notes.push(`target: >= 40 x faster than cedar-wasm at 10 rules: ${round(cedar10.nsMedian / w10.nsMedian, 1)} x -> ${cedar10.nsMedian / w10.nsMedian >= 40 ? "met" : "MISSED"}`);
  notes.push(`target: >= 10 x faster than casbin at 10 rules: ${round(casbin10.nsMedian / w10.nsMedian, 1)} x -> ${casbin10.nsMedian / w10.nsMedian >= 10 ? "met" : "MISSED"}`);
  const b10k = build.find((b) => b.rules === 10000);
  if (b10k) notes.push(`target: compile + link of 10,000 rules <= 200 ms: ${b10k.compile_link_ms} ms -> ${(b10k.compile_link_ms as number) <= 200 ? "met" : "MISSED"}`);
  const b100k = build.find((b) => b.rules === 100000);
  if (b100k) notes.push(`target: module for 100,000 rules <= 16 MB: ${round((b100k.module_bytes as number) / 1e6, 2)} MB -> ${(b100k.module_bytes as number) <= 16e6 ? "met" : "MISSED"}`);
  notes.push("peers get the same rules minus the one wildcard rule (no request in the benchmark hits it); every contender is checked against the reference on the benchmark's requests first");

  const sections: BenchSection[] = [
    { name: "evaluator", title: "Decision cost by rule count (ns per decision; same rules, same requests, same run)", rows, notes },
    { name: "compile", title: "Policy build: parse, compile + link, load, module size", rows: build, notes: ["compile + link does not run the AssemblyScript compiler: the evaluator is built once and the policy image is linked in as a data segment"] },
  ];
  return sections;
};
