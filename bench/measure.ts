// Timing helpers: per-decision cost from batches of calls (so timer overhead does not
// dominate), with median and p99 across batches, bounded in time.
export interface Timing {
  nsMedian: number;
  nsP99: number;
  opsPerSec: number;
  samples: number;
  capped: boolean;
}

let blackhole = 0;
/** Keeps results alive so the JIT cannot drop the work. */
export function consume(v: unknown): void {
  if (v === blackhole) blackhole++;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Calls `fn(i)` in batches of `batch`; stops after `maxMs` (or `maxSamples` batches).
 * `capped` says the time bound, not the sample count, ended the run.
 */
export function measure(fn: (i: number) => unknown, opts: MeasureOptions): Timing {
  const clock = opts.cpu ? cpuNowMs : () => performance.now();
  const warm = opts.warmup ?? Math.min(opts.batch * 20, 20000);
  for (let i = 0; i < warm; i++) consume(fn(i));
  const per: number[] = [];
  const maxSamples = opts.maxSamples ?? 2000;
  const deadline = performance.now() + opts.maxMs;
  let total = 0;
  let calls = 0;
  let i = 0;
  while (per.length < maxSamples && performance.now() < deadline) {
    const t0 = clock();
    for (let k = 0; k < opts.batch; k++) consume(fn(i++));
    const dt = clock() - t0;
    per.push((dt * 1e6) / opts.batch);
    total += dt;
    calls += opts.batch;
  }
  per.sort((a, b) => a - b);
  return { nsMedian: quantile(per, 0.5), nsP99: quantile(per, 0.99), opsPerSec: calls / (total / 1000), samples: per.length, capped: per.length < maxSamples };
}

/** This process's CPU time (user + system), in ms: unlike wall-clock time, it does not count waiting for a core. */
export function cpuNowMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface MeasureOptions {
  batch: number;
  maxMs: number;
  maxSamples?: number;
  warmup?: number;
  /** Time each batch in CPU time (cpuNowMs) rather than wall-clock time; the time bound stays wall-clock. */
  cpu?: boolean;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
