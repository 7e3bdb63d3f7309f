// Counters and a summary kept in plain typed storage on the hot path and turned into
// prom-client metrics only when /metrics is scraped: prom-client hashes label objects on
// every inc() (~0.3 µs) and its summary runs a t-digest per observe() (~0.7 µs), which a
// batch of 1,000 decisions cannot afford.
import { Counter, type Registry, Summary } from "prom-client";

/**
 * Counts by (source, dest) with `slots` values per pair (e.g. allow/deny). The number of
 * distinct pairs is capped: once full, new pairs are counted under ("other", "other").
 */
export class PairCounts {
  private readonly pairs = new Map<string, Map<string, Float64Array>>();
  private count = 0;
  private overflow: Float64Array | null = null;

  constructor(
    private readonly slots: number,
    private readonly maxSeries: number,
  ) {}

  add(source: string, dest: string, slot: number, n = 1): void {
    let inner = this.pairs.get(source);
    let cell = inner?.get(dest);
    if (cell === undefined) {
      if (this.count >= this.maxSeries) {
        cell = this.overflow ??= this.ensure("other", "other");
      } else {
        if (inner === undefined) {
          inner = new Map();
          this.pairs.set(source, inner);
        }
        cell = new Float64Array(this.slots);
        inner.set(dest, cell);
        this.count++;
      }
    }
    cell[slot]! += n;
  }

  private ensure(source: string, dest: string): Float64Array {
    let inner = this.pairs.get(source);
    if (!inner) {
      inner = new Map();
      this.pairs.set(source, inner);
    }
    let cell = inner.get(dest);
    if (!cell) {
      cell = new Float64Array(this.slots);
      inner.set(dest, cell);
      this.count++;
    }
    return cell;
  }

  get series(): number {
    return this.count;
  }

  forEach(fn: (source: string, dest: string, values: Float64Array) => void): void {
    for (const [s, inner] of this.pairs) for (const [d, cell] of inner) fn(s, d, cell);
  }
}

/** A prom-client Counter whose values are copied from a PairCounts at scrape time. */
export function pairCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  counts: PairCounts,
  toLabels: (source: string, dest: string, slot: number) => Partial<Record<L, string>> | null,
  slots: number,
): Counter<L> {
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Counter<L>) {
      this.reset();
      counts.forEach((s, d, values) => {
        for (let i = 0; i < slots; i++) {
          const labels = toLabels(s, d, i);
          if (labels !== null && values[i]! > 0) this.inc(labels, values[i]!);
        }
      });
    },
  });
}

/**
 * A Prometheus summary over a sliding window: exact quantiles of the samples of the last
 * `windowSeconds` (at most `capacity` of them, the most recent), plus all-time sum and count.
 */
export class WindowSummary extends Summary<string> {
  private readonly values: Float64Array;
  private readonly times: Float64Array;
  private next = 0;
  private filled = 0;
  private sum = 0;
  private total = 0;

  private readonly metricName: string;
  private readonly metricHelp: string;

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly quantiles: readonly number[],
    capacity: number,
    private readonly windowSeconds: number,
  ) {
    super({ name, help, percentiles: [...quantiles], registers: [registry] });
    this.metricName = name;
    this.metricHelp = help;
    this.values = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }

  /** Hot path: two array writes. `nowMs` is performance.now() (the caller already has it). */
  record(seconds: number, nowMs: number): void {
    const i = this.next;
    this.values[i] = seconds;
    this.times[i] = nowMs;
    this.next = i + 1 === this.values.length ? 0 : i + 1;
    if (this.filled < this.values.length) this.filled++;
    this.sum += seconds;
    this.total++;
  }

  /** Records `n` samples of the same value (a batch's amortised per-decision latency). */
  recordMany(seconds: number, n: number, nowMs: number): void {
    const k = Math.min(n, this.values.length);
    for (let j = 0; j < k; j++) this.record(seconds, nowMs);
    this.sum += seconds * (n - k);
    this.total += n - k;
  }

  override async get(): ReturnType<Summary<string>["get"]> {
    const since = performance.now() - this.windowSeconds * 1000;
    const window: number[] = [];
    for (let i = 0; i < this.filled; i++) if (this.times[i]! >= since) window.push(this.values[i]!);
    window.sort((a, b) => a - b);
    const values: Array<{ labels: { quantile?: number }; value: number; metricName?: string }> = [];
    for (const q of this.quantiles) {
      const v = window.length === 0 ? Number.NaN : window[Math.min(window.length - 1, Math.floor(q * window.length))]!;
      values.push({ labels: { quantile: q }, value: v });
    }
    values.push({ metricName: `${this.metricName}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.metricName}_count`, labels: {}, value: this.total });
    return { name: this.metricName, help: this.metricHelp, type: "summary", values, aggregator: "sum" } as unknown as Awaited<ReturnType<Summary<string>["get"]>>;
  }

  override reset(): void {
    this.next = 0;
    this.filled = 0;
    this.sum = 0;
    this.total = 0;
  }
}
