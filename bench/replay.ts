// Benchmark section "replay": the rollout tools at scale (docs/rollout.md).
//   - zt replay: a trail of N records in the embedded PostgreSQL, replayed with a 10,000-rule
//     candidate; records/s (target >= 200,000/s) and peak memory at two sizes (bounded: it must
//     not grow with N), beside only reading the same pages (the database's and the driver's floor).
//   - zt diff on two 10,000-rule sets: one with 1% of its rules changed, one with every rule
//     changed; beside it, compiling both sets into modules (what `zt build` does twice), as
//     the scale to read the diff's time against.
import { mkdtemp, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { compilePolicySet } from "../compiler/compile.js";
import { openAudit } from "../host/audit/index.js";
import { PolicyRuntime } from "../host/engine/runtime.js";
import { replay } from "../host/rollout/replay.js";
import { openTrailConnection, readTrail, type TrailWindow } from "../host/rollout/trail.js";
import { diffPolicySets } from "../compiler/diff/index.js";
import { buildPolicySet } from "../compiler/load.js";
import type { PolicySet } from "../compiler/model.js";
import { parsePolicyText } from "../compiler/parse.js";
import { cpuAccountingAvailable, startCpuMeter } from "./cpu.js";
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

const REPLAY_TARGET = 200_000;

/**
 * N synthetic decisions straight into the trail's table (as the owner; the writer's hash chain
 * is not what is measured here): flows between the generated workloads, half of them a rule's
 * (source, destination, port), the rest one port off; 1 in 7 denied and not enforced.
 */
async function fillTrail(superuser: string, rules: readonly GeneratedRule[], n: number, from: Date, to: Date): Promise<void> {
  const sql = postgres(superuser, { max: 1, onnotice: () => undefined });
  try {
    await sql`SELECT zt_audit.ensure_partition(${from.toISOString()}::timestamptz), zt_audit.ensure_partition(${to.toISOString()}::timestamptz)`;
    const flows = rules.slice(0, 2000);
    await sql`CREATE TEMP TABLE flows (i int, src text, dst text, port int)`;
    await sql`INSERT INTO flows SELECT * FROM unnest(${sql.array(flows.map((_, i) => i))}::int[], ${sql.array(flows.map((r) => r.from))}::text[], ${sql.array(flows.map((r) => r.to))}::text[], ${sql.array(flows.map((r) => r.port))}::int[])`;
    const span = (to.getTime() - from.getTime()) * 1000;
    const chunk = 500_000;
    for (let start = 0; start < n; start += chunk) {
      const end = Math.min(n, start + chunk);
      await sql.unsafe(
        `INSERT INTO zt_audit.decisions (ts, decision_id, decision, source_spiffe_id, dest_spiffe_id, dest_port, policy_matched, latency_us, enforced, reason, policy_version, origin, chain_id, seq, prev_hash, hash)
         SELECT $1::timestamptz + (g::bigint * $2 / $3) * interval '1 microsecond', gen_random_uuid(),
                CASE WHEN g % 7 = 0 THEN 'DENY' ELSE 'ALLOW' END, f.src, f.dst, f.port + (g % 2),
                NULL, 12, g % 7 <> 0, CASE WHEN g % 7 = 0 THEN 'default_deny' ELSE 'allowed_by_rule' END,
                'sha256:bench', 'bench', 'bench-' || $3, g + 1, '\\x00', '\\x00'
           FROM generate_series($4::bigint, $5::bigint) g JOIN flows f ON f.i = g % ${flows.length}`,
        [from.toISOString(), span, n, start, end - 1],
      );
    }
    await sql`ANALYZE zt_audit.decisions`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Peak RSS and heap during `fn`, sampled every 20 ms: the process's peak RSS, and both as MiB
 * above what they were before (RSS pages already touched are reused, so the growth alone can read 0).
 */
async function peakMemory<T>(fn: () => Promise<T>): Promise<{ result: T; peakRssMiB: number; rssMiB: number; heapMiB: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  let rss = rss0;
  let heap = heap0;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss);
    heap = Math.max(heap, m.heapUsed);
  }, 20);
  try {
    const result = await fn();
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss);
    heap = Math.max(heap, m.heapUsed);
    return { result, peakRssMiB: rss / 2 ** 20, rssMiB: (rss - rss0) / 2 ** 20, heapMiB: (heap - heap0) / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

/** µs per record from a meter stopped over one unit (startCpuMeter rounds per unit to whole µs). */
function fraction(totalUs: number, records: number): number {
  return round(totalUs / Math.max(1, records), 2);
}

async function replaySection(quick: boolean): Promise<BenchSection> {
  const sizes = quick ? [50_000, 200_000] : [1_000_000, 10_000_000];
  const rules = generateRules(10_000);
  const candidate = await PolicyRuntime.load(compilePolicySet(setOf(rules)).wasm);
  const rows: Array<Record<string, Cell>> = [];
  const dir = await mkdtemp(join(tmpdir(), "zt-bench-replay-"));
  const audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny", maintenanceIntervalMs: 24 * 3_600_000 });
  let best = 0;
  let trail: ReturnType<typeof openTrailConnection> | null = null;
  try {
    // The owner role may insert into the trail's table (the engine's role is what the writer uses).
    const superuser = audit.connections.owner;
    if (!superuser) throw new Error("the replay bench needs the embedded PostgreSQL");
    // One connection of its own, as zt replay and POST /v1/replay use.
    const sql = (trail = openTrailConnection(audit.connections.engine, "zt-bench-replay"));
    const until = new Date();
    let filled = 0;
    for (const n of sizes) {
      // Each size is its own window; the earlier, smaller one stays in the table.
      const to = new Date(until.getTime() - filled * 10);
      const from = new Date(to.getTime() - n * 10);
      await fillTrail(superuser, rules, n, from, to);
      filled += n;
      const window: TrailWindow = { since: from, until: to, destination: null };
      // The floor: the same chunks read and grouped by PostgreSQL, nothing decided.
      const meterRead = cpuAccountingAvailable() ? startCpuMeter(process.pid) : null;
      const readOnly = await peakMemory(async () => {
        const t0 = performance.now();
        let count = 0;
        for await (const chunk of readTrail(sql, window)) count += chunk.records;
        return { count, ms: performance.now() - t0 };
      });
      const readCpu = meterRead?.stop(1) ?? null;
      const meter = cpuAccountingAvailable() ? startCpuMeter(process.pid) : null;
      const rep = await peakMemory(() => replay(sql, window, candidate));
      const r = rep.result;
      const cpu = meter?.stop(1) ?? null;
      best = Math.max(best, r.records_per_s);
      rows.push({
        case: "read the window's chunks only (floor)",
        records: readOnly.result.count,
        "records/s": Math.round(readOnly.result.count / (readOnly.result.ms / 1000)),
        "node CPU µs/record": readCpu ? fraction(readCpu.mainUs, readOnly.result.count) : null,
        "PostgreSQL CPU µs/record": readCpu ? fraction(readCpu.childrenUs, readOnly.result.count) : null,
        "peak RSS MiB": round(readOnly.peakRssMiB, 0),
        "peak RSS +MiB": round(readOnly.rssMiB, 1),
        "peak heap +MiB": round(readOnly.heapMiB, 1),
        "changed flows": null,
      });
      rows.push({
        case: "zt replay with a 10,000-rule candidate",
        records: r.records.read,
        "records/s": r.records_per_s,
        "node CPU µs/record": cpu ? fraction(cpu.mainUs, r.records.read) : null,
        "PostgreSQL CPU µs/record": cpu ? fraction(cpu.childrenUs, r.records.read) : null,
        "peak RSS MiB": round(rep.peakRssMiB, 0),
        "peak RSS +MiB": round(rep.rssMiB, 1),
        "peak heap +MiB": round(rep.heapMiB, 1),
        "changed flows": r.service.allow_to_deny.length + r.service.deny_to_allow.length,
      });
    }
  } finally {
    await trail?.end({ timeout: 5 });
    await audit.close();
    await rm(dir, { recursive: true, force: true });
  }
  return {
    name: "replay",
    title: "zt replay: the audit trail (embedded PostgreSQL, same machine) decided again by a candidate",
    rows,
    notes: [
      `target >= ${REPLAY_TARGET} records/s: ${best >= REPLAY_TARGET ? "met" : "NOT met"} (best ${best} records/s)`,
      "bounded memory: the peak RSS (the whole node process: engine, 10,000-rule module, driver) and the growth of RSS and heap above the start must not grow with the window; replay holds one chunk's groups (distinct requests of a time slice of about 200,000 records) and one entry per changed flow",
      "CPU from /proc during the run: node = this process's main thread, PostgreSQL = every process of the embedded server (backend, parallel workers, background work)",
      "records were bulk-inserted as the table owner (2,000 flows from bench/policy-gen.ts, half on a rule's port, half one port off, 1 in 7 a not-enforced DENY); the hash chain is not what is read here",
      `PostgreSQL runs on the same machine and its CPU is not in node CPU µs/record; machine: ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(1)} at the end (other work lowers the figures)`,
    ],
  };
}

export const run: BenchFn = async ({ quick }) => [await replaySection(quick), diffSection(quick)];
