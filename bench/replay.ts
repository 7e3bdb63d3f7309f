// Benchmark section "replay": the rollout tools at scale (docs/rollout.md).
//   - zt diff on two 10,000-rule sets: one with 1% of its rules changed, one with every rule
//     changed; beside it, compiling both sets into modules (what `zt build` does twice), as
//     the scale to read the diff's time against.
import { compilePolicySet } from "../compiler/compile.js";
import { diffPolicySets } from "../compiler/diff/index.js";
import { buildPolicySet } from "../compiler/load.js";
import type { PolicySet } from "../compiler/model.js";
import { parsePolicyText } from "../compiler/parse.js";
import { round } from "./measure.js";
import { generateRules, type GeneratedRule, policyYaml } from "./policy-gen.js";
import type { BenchFn, BenchSection, Cell } from "./types.js";

function setOf(rules: readonly GeneratedRule[], extra = (t: string) => t): PolicySet {
  const r = parsePolicyText(extra(policyYaml(rules)), "bench.yaml");
  if (!r.ok) throw new Error(JSON.stringify(r.errors.slice(0, 3)));
  const s = buildPolicySet(r.policies);
  if (!s.ok) throw new Error(JSON.stringify(s.errors.slice(0, 3)));
  return s.set;
}

/** Wall and CPU milliseconds of `fn`, median over `runs` after one warm-up. */
function timed(fn: () => unknown, runs: number): { wall: number; cpu: number; result: unknown } {
  let result = fn();
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    result = fn();
    walls.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1000);
  }
  const mid = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { wall: mid(walls), cpu: mid(cpus), result };
}

function diffSection(quick: boolean): BenchSection {
  const n = 10_000;
  const runs = quick ? 2 : 5;
  const base = generateRules(n);
  const oldSet = setOf(base);
  // 1%: a port moved on every 100th rule, a DENY flipped on every 250th, the wildcard's range widened.
  const similar = setOf(
    base.map((r, i) => (i % 100 === 7 ? { ...r, port: r.port + 1 } : i % 250 === 3 ? { ...r, deny: !r.deny } : r)),
    (t) => t.replace("9090-9100", "9090-9101"),
  );
  const disjoint = setOf(base.map((r, i) => ({ ...r, to: `spiffe://hanzo.ai/k8s-${i % 3}/ns-${(i * 31) % 97}/sa-${(i * 17) % n}` })));
  const rows: Array<Record<string, Cell>> = [];
  for (const [name, newSet] of [["1% of rules changed", similar], ["every rule changed", disjoint]] as const) {
    const t = timed(() => diffPolicySets(oldSet, newSet), runs);
    const d = t.result as ReturnType<typeof diffPolicySets>;
    rows.push({
      case: `zt diff, ${name}`,
      rules: `${n} vs ${n}`,
      classes: d.service.allow_to_deny.length + d.service.deny_to_allow.length,
      wall_ms: round(t.wall, 0),
      cpu_ms: round(t.cpu, 0),
    });
  }
  const build = timed(() => [compilePolicySet(oldSet), compilePolicySet(similar)], runs);
  rows.push({ case: "baseline: compile both sets (zt build x2)", rules: `${n} vs ${n}`, classes: null, wall_ms: round(build.wall, 0), cpu_ms: round(build.cpu, 0) });
  return {
    name: "diff",
    title: "zt diff: exact diff of two 10,000-rule policy sets (bench/policy-gen.ts shapes)",
    rows,
    notes: [
      "classes = service request classes found (ALLOW->DENY plus DENY->ALLOW); the diff is exact, every class is checked against brute force in test/rollout/diff.property.test.ts",
      `median of ${runs} runs after a warm-up; cpu_ms is this process's user+system CPU (process.cpuUsage), less sensitive to other load than wall_ms`,
      "loading and validating the YAML is not included (the same for both); the baseline is what compiling the two sets into modules costs",
    ],
  };
}

export const run: BenchFn = async ({ quick }) => [diffSection(quick)];
