// A loop over the proxywasm section's thin-host floor or its runtime row, for profilers and
// instruction counters (docs/performance.md, "The Envoy filter's thin-host floor"):
//   node dist/bench/proxywasm-loop.js floor|runtime ITERATIONS [evaluator.wasm] [rules]
// Same policy, requests and thin host as the section; 50,000 calls of warm-up, then
// ITERATIONS calls, then CPU and wall time per call on stdout. An evaluator built with a name
// section (asc ... --debug: the same code) gives named Wasm frames in perf and --cpu-prof.
import { readFileSync } from "node:fs";
import { compilePolicySet, loadEvaluator } from "../compiler/compile.js";
import { buildPolicySet } from "../compiler/load.js";
import { parsePolicyText } from "../compiler/parse.js";
import { PolicyRuntime } from "../host/engine/runtime.js";
import { consume } from "./measure.js";
import { generateRequests, generateRules, policyYaml } from "./policy-gen.js";
import { thinHost } from "./proxywasm.js";

const REQUESTS = 4096;
const WARMUP = 50_000;

async function main(): Promise<void> {
  const [which, iterations, evaluatorFile, ruleCount] = process.argv.slice(2);
  const n = Number(iterations);
  if ((which !== "floor" && which !== "runtime") || !Number.isInteger(n) || n <= 0) {
    throw new Error("usage: proxywasm-loop.js floor|runtime ITERATIONS [evaluator.wasm] [rules]");
  }
  const rules = generateRules(Number(ruleCount ?? 1000));
  const parsed = parsePolicyText(policyYaml(rules), "bench.yaml");
  if (!parsed.ok) throw new Error("bench policy does not parse");
  const set = buildPolicySet(parsed.policies);
  if (!set.ok) throw new Error("bench policy set invalid");
  const evaluator = evaluatorFile !== undefined && evaluatorFile !== "-" ? new Uint8Array(readFileSync(evaluatorFile)) : loadEvaluator();
  const mod = compilePolicySet(set.set, evaluator);
  const reqs = generateRequests(rules, REQUESTS);
  const mask = REQUESTS - 1;
  let call: (i: number) => unknown;
  if (which === "runtime") {
    const rt = await PolicyRuntime.load(mod.wasm);
    call = (i) => rt.evaluateService(reqs[i & mask]!);
  } else {
    const decide = thinHost(mod.wasm, reqs);
    call = (i) => decide(i & mask);
  }
  for (let i = 0; i < WARMUP; i++) consume(call(i));
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  for (let i = 0; i < n; i++) consume(call(i));
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - wall0;
  process.stdout.write(`${which} iterations=${n} cpu_ns_per_call=${(((cpu.user + cpu.system) * 1000) / n).toFixed(1)} wall_ns_per_call=${((wall * 1e6) / n).toFixed(1)}\n`);
}

await main();
