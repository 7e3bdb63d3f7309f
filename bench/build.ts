// npm run bench -- --only build (issue 22, finding 1): what a policy write costs the requests
// a replica is serving. One `zt serve` on the embedded PostgreSQL per row pair: builds on the
// build thread (the engine as shipped) and on the serving thread (ZT_BUILD_INLINE=1, the
// engine before issue 22), same machine, same run. Measured: single evaluates idle vs while a
// 12,500-rule policy is written, and the time of a 1-rule write with 50,000 rules loaded.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres } from "../host/audit/embedded.js";
import { bootstrapRoles } from "../host/audit/roles.js";
import { quantile, round } from "./measure.js";
import { generateRules, policyYaml } from "./policy-gen.js";
import { churnPolicy, type Replica, startReplica, stopReplica, TOKEN } from "./replica-process.js";
import type { BenchFn, BenchSection, Cell } from "./types.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const EVALUATE = JSON.stringify({ source: { spiffe_id: H + "gateway" }, destination: { spiffe_id: H + "postgres", port: 5432 } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bigPolicy(rules: number): string {
  return policyYaml(generateRules(rules)).replace("name: mesh", "name: bench-big");
}

async function put(r: Replica, name: string, text: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${r.api}/v1/policies/${name}`, { method: "PUT", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/yaml" }, body: text });
  const ms = performance.now() - t0;
  if (res.status !== 200 && res.status !== 201) throw new Error(`PUT ${name}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return ms;
}

/** Single evaluates one after another (1 ms apart) until `stop()` says so; latencies in ms, sorted. */
async function singles(r: Replica, stop: () => boolean): Promise<number[]> {
  const lat: number[] = [];
  while (!stop()) {
    const t0 = performance.now();
    const res = await fetch(`${r.api}/v1/evaluate`, { method: "POST", headers: { "content-type": "application/json" }, body: EVALUATE });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`evaluate: ${res.status}`);
    lat.push(performance.now() - t0);
    await sleep(1);
  }
  return lat.sort((a, b) => a - b);
}

/** The engine's own longest event-loop hold over its last 10-20 s (GET /healthz). */
async function loopMax(r: Replica): Promise<number> {
  const res = await fetch(`${r.health}/healthz`);
  return ((await res.json()) as { event_loop: { delay_max_ms: number } | null }).event_loop?.delay_max_ms ?? NaN;
}

interface Figures {
  idle: number[];
  during: number[];
  writeMs: number;
  loopMaxMs: number;
  oneRule: number[];
}

async function measureReplica(r: Replica, quick: boolean): Promise<Figures> {
  const idleUntil = performance.now() + (quick ? 2000 : 5000);
  await singles(r, () => performance.now() > idleUntil - 1000); // warm-up
  const idle = await singles(r, () => performance.now() > idleUntil);
  let writing = true;
  const duringP = singles(r, () => !writing);
  const writeMs = await put(r, "bench-big", bigPolicy(12_500));
  writing = false;
  const during = await duringP;
  const loopMaxMs = await loopMax(r);
  // 50,000 rules loaded (the same API policy, grown), then 1-rule writes beside them.
  await put(r, "bench-big", bigPolicy(50_000));
  const oneRule: number[] = [];
  for (let i = 0; i < (quick ? 3 : 10); i++) oneRule.push(await put(r, "bench-one", churnPolicy("bench-one", i)));
  for (const name of ["bench-big", "bench-one"]) {
    const res = await fetch(`${r.api}/v1/policies/${name}`, { method: "DELETE", headers: { authorization: `Bearer ${TOKEN}` } });
    if (res.status !== 200) throw new Error(`DELETE ${name}: ${res.status} ${await res.text()}`);
  }
  return { idle, during, writeMs, loopMaxMs, oneRule: oneRule.sort((a, b) => a - b) };
}

export const run: BenchFn = async (opts) => {
  const root = mkdtempSync(join(tmpdir(), "zt-bench-build-"));
  chmodSync(root, 0o711);
  const pg = await startEmbeddedPostgres({ dataDir: join(root, "pg") });
  const results: Array<{ label: string; f: Figures }> = [];
  try {
    const dsns = await bootstrapRoles(pg.dsn, root);
    // A 50,000-rule document is about 8.5 MB of YAML.
    const env = { ZT_MAX_POLICY_BYTES: String(16 * 1024 * 1024) };
    for (const [id, label, inline] of [
      ["inline", "before: builds on the serving thread (ZT_BUILD_INLINE=1)", "1"],
      ["thread", "after: builds on the build thread", "0"],
    ] as const) {
      // The two run one after the other on one shared state; each deletes what it wrote.
      const r = await startReplica(id, join(root, id), dsns, { ...env, ZT_BUILD_INLINE: inline });
      try {
        results.push({ label, f: await measureReplica(r, opts.quick) });
      } finally {
        await stopReplica(r);
      }
    }
  } finally {
    await pg.stop();
    rmSync(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
  const ms = (x: number | undefined): Cell => (x === undefined || Number.isNaN(x) ? null : round(x, 1));
  const rows = results.map(({ label, f }) => ({
    engine: label,
    "idle p50 ms": ms(quantile(f.idle, 0.5)),
    "idle p99 ms": ms(quantile(f.idle, 0.99)),
    "during 12.5k write: evaluates": f.during.length,
    "p50 ms": ms(quantile(f.during, 0.5)),
    "p99 ms": ms(quantile(f.during, 0.99)),
    "max ms": ms(f.during[f.during.length - 1]),
    "p99 / idle p99": round(quantile(f.during, 0.99) / quantile(f.idle, 0.99), 2),
    "longest loop hold ms": ms(f.loopMaxMs),
    "12.5k write ms": ms(f.writeMs),
    "1-rule write beside 50k, median ms": ms(quantile(f.oneRule, 0.5)),
    "1-rule write max ms": ms(f.oneRule[f.oneRule.length - 1]),
  }));
  const after = results.find((r) => r.label.startsWith("after"))?.f;
  const notes = [
    after ? `goal: p99 during the 12.5k write within 2x idle p99: ${quantile(after.during, 0.99) <= 2 * quantile(after.idle, 0.99) ? "met" : "NOT met"}` : "goal rows missing",
    after ? `goal: a 1-rule write beside 50,000 rules <= 500 ms: ${quantile(after.oneRule, 0.5) <= 500 ? "met" : "NOT met"} (median of ${after.oneRule.length})` : "goal rows missing",
    "one zt serve per row on the embedded PostgreSQL (shared state), seed policies; single evaluates 1 ms apart from this process, idle and then while PUT /v1/policies/bench-big (12,500 rules, 2 MB of YAML) runs",
    "longest loop hold: the engine's own monitorEventLoopDelay as GET /healthz reports it (its last 10-20 s, so it covers the write)",
    "1-rule write: PUT of a one-rule policy with a 50,000-rule API policy loaded, from request to answer (build of the whole set beside a parse-cache hit for the big one, commit, swap); only parsing is cached: validation, compilation and linking of the whole set run on every write, and on the build thread the set also crosses back in serialized pieces",
    "measured on a 2-core machine shared with other work: compare the rows of one run, not absolute figures",
  ];
  return { name: "build", title: "Policy builds: evaluate latency while a 12,500-rule policy is written, and a 1-rule write beside 50,000 rules", rows, notes } satisfies BenchSection;
};

