// npm run bench -- --only hostile (issue 22): what the body bounds cost on normal bodies, what
// they save on a hostile one, and how long the event loop is held while batches of 10,000 are
// decided next to single requests (monitorEventLoopDelay in the engine's process, and the
// latency of single evaluates measured beside the batches vs the same engine idle).
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { parseJsonBytes, SLICE_ITEMS } from "../host/http/body.js";
import type { JsonBounds } from "../host/http/json-bounds.js";
import { cpuAccountingAvailable, startCpuMeter } from "./cpu.js";
import { startChild, stopChild } from "./http.js";
import { measure, quantile, round } from "./measure.js";
import type { BenchFn, BenchSection, Cell } from "./types.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const one = (i: number) => ({ source: { spiffe_id: H + (i % 2 ? "gateway" : "iam"), pod: `gateway-7f8b9c6d4-x2k9p`, node: "worker-3" }, destination: { spiffe_id: H + (i % 2 ? "postgres" : "redis"), port: i % 2 ? 5432 : 6379 } });
const batchOf = (n: number) => Array.from({ length: n }, (_, i) => one(i));
/** The bounds POST /v1/evaluate applies (routes/evaluate.ts). */
const EVALUATE: JsonBounds = { maxDepth: 8, maxStringBytes: 64 * 1024, maxItems: 10_000, maxValuesPerItem: 256 };

function parseCost(): Array<Record<string, Cell>> {
  const rows: Array<Record<string, Cell>> = [];
  for (const [name, value, batch] of [
    ["single request", one(1), 20_000],
    ["batch of 100", batchOf(100), 200],
    ["batch of 1,000", batchOf(1000), 20],
  ] as const) {
    const bytes = Buffer.from(JSON.stringify(value));
    const plain = measure(() => JSON.parse(bytes.toString("utf8")), { batch, maxMs: 1500 });
    // A large array comes back as slices: parsing all of them is part of the cost.
    const parseAll = () => {
      const r = parseJsonBytes(bytes, EVALUATE);
      if (!r.ok || r.batch === null) return r;
      const out: unknown[] = [];
      for (let k = 0; k < r.batch.slices; k++) out.push(r.batch.parseSlice(k));
      return out;
    };
    const bounded = measure(parseAll, { batch, maxMs: 1500 });
    rows.push({ case: name, bytes: bytes.length, "JSON.parse µs": round(plain.nsMedian / 1000, 2), "bounded (UTF-8 + scan + parse) µs": round(bounded.nsMedian / 1000, 2), overhead: `${Math.round((bounded.nsMedian / plain.nsMedian - 1) * 100)}%` });
  }
  return rows;
}

function hostileCost(): Record<string, Cell> {
  const n = 2_000_000 - 8;
  const text = "[".repeat(n) + "]".repeat(n);
  const bytes = Buffer.from(text);
  let t0 = performance.now();
  const r = parseJsonBytes(bytes, EVALUATE);
  const bounded = performance.now() - t0;
  t0 = performance.now();
  try {
    JSON.parse(text);
  } catch {
    // Deep nesting may also fail in the parser; its cost is what is measured.
  }
  const unbounded = performance.now() - t0;
  return { case: `4 MB '[[[…]]]' (${(bytes.length / 1e6).toFixed(1)} MB)`, bytes: bytes.length, "JSON.parse µs": round(unbounded * 1000, 0), "bounded (UTF-8 + scan + parse) µs": round(bounded * 1000, 1), overhead: r.ok ? "accepted?!" : `refused: ${r.code} at byte ${r.offset}` };
}

/** Asks the engine's process for the longest event-loop hold since the last ask (and resets it). */
function loopHold(child: ChildProcess): Promise<{ maxMs: number; p99Ms: number }> {
  return new Promise((resolve) => {
    const onData = (d: Buffer) => {
      const m = /LOOP ([\d.]+) ([\d.]+)/.exec(d.toString());
      if (!m) return;
      child.stdout!.off("data", onData);
      resolve({ maxMs: Number(m[1]), p99Ms: Number(m[2]) });
    };
    child.stdout!.on("data", onData);
    child.kill("SIGUSR2");
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Single evaluates one after another (2 ms apart) until `until`; their latencies in ms. */
async function singles(url: string, until: number): Promise<number[]> {
  const body = JSON.stringify(one(1));
  const lat: number[] = [];
  while (performance.now() < until) {
    const t0 = performance.now();
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    await res.arrayBuffer();
    lat.push(performance.now() - t0);
    await sleep(2);
  }
  return lat.sort((a, b) => a - b);
}

export const run: BenchFn = async (opts) => {
  const seconds = opts.quick ? 3 : 10;
  const parseRows = [...parseCost(), hostileCost()];
  const eng = await startChild(["engine", join(process.cwd(), "policies")]);
  const rows: Array<Record<string, Cell>> = [];
  let batches = 0;
  try {
    const url = `http://127.0.0.1:${eng.port}/v1/evaluate`;
    const big = JSON.stringify(batchOf(10_000));
    const post = async () => {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: big });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`10k batch: ${res.status}`);
    };
    await post();
    await singles(url, performance.now() + 1000);
    await loopHold(eng.child);
    const idle = await singles(url, performance.now() + seconds * 1000);
    const idleHold = await loopHold(eng.child);
    const until = performance.now() + seconds * 1000;
    const loader = (async () => {
      while (performance.now() < until) {
        await post();
        batches++;
      }
    })();
    const loaded = await singles(url, until);
    await loader;
    const loadedHold = await loopHold(eng.child);
    // CPU of the engine's main thread per batch, alone: the work the slices share out. Unlike
    // the wall-clock figures above it does not grow when other processes take the CPU.
    let cpuRow: Record<string, Cell> | null = null;
    if (cpuAccountingAvailable()) {
      const n = opts.quick ? 3 : 10;
      const meter = startCpuMeter(eng.child.pid!);
      for (let i = 0; i < n; i++) await post();
      const cpu = meter.stop(n);
      const slices = Math.ceil(10_000 / SLICE_ITEMS);
      cpuRow = { case: `engine main-thread CPU per batch of 10,000 (${n} batches, alone)`, requests: n, "p50 ms": null, "p99 ms": null, "max ms": null, "longest loop hold ms": null, "loop delay p99 ms": null, "main-thread CPU ms per batch": round(cpu.mainUs / 1000, 1), "per slice ms": round(cpu.mainUs / 1000 / (slices + 1), 2) };
    }
    const row = (name: string, lat: number[], hold: { maxMs: number; p99Ms: number }): Record<string, Cell> => ({ case: name, requests: lat.length, "p50 ms": round(quantile(lat, 0.5), 2), "p99 ms": round(quantile(lat, 0.99), 2), "max ms": round(lat[lat.length - 1] ?? NaN, 2), "longest loop hold ms": hold.maxMs, "loop delay p99 ms": hold.p99Ms, "main-thread CPU ms per batch": null, "per slice ms": null });
    rows.push(row("single evaluates, engine idle", idle, idleHold));
    rows.push(row(`single evaluates beside back-to-back batches of 10,000 (${batches} batches)`, loaded, loadedHold));
    if (cpuRow) rows.push(cpuRow);
  } finally {
    await stopChild(eng.child);
  }
  const loopNotes = [
    "main-thread CPU per batch: /proc utime+stime of the engine's main thread over batches posted alone, divided by the batch's turns of the loop (20 slices and the body read): the CPU one turn holds the loop for on an idle machine",
    "longest loop hold: monitorEventLoopDelay (1 ms resolution) in the engine's process over the measured run; the health port shares this loop, so it is also the longest a liveness probe waited",
    "a batch of 10,000 is decided 256 (SLICE_ITEMS) at a time with a turn of the event loop in between (docs/api.md, Batches); before issue 22 it was one synchronous block (JSON.parse of 1.7 MB, validation, evaluation, audit hand-off and serialisation of all 10,000)",
    "engine with the real audit trail (embedded PostgreSQL) in a child process; the singles and the batches come from this process on two connections",
    "measured on a 2-core machine shared with other work: absolute figures are loaded-machine figures; compare the rows of one run",
  ];
  return [
    { name: "hostile-parse", title: "Hostile client: cost of the body bounds (UTF-8 check + bounds scan + JSON.parse) vs JSON.parse alone", rows: parseRows, notes: ["median per body over batches of calls, in this process", "the 4 MB row is one call each: JSON.parse is what the engine ran before the bounds; the bounded row refuses at the first byte past the depth bound"] } satisfies BenchSection,
    { name: "hostile-loop", title: "Hostile client: event-loop holds and evaluate latency beside batches of 10,000", rows, notes: loopNotes } satisfies BenchSection,
  ];
};
