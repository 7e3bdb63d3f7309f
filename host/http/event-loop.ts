// How long the event loop was held: the API and the health port share it, so a loop held for
// a second is a liveness probe that timed out. The health answer reports the delay over the
// last 10-20 s (monitorEventLoopDelay, sampled every 10 ms); the same loop answering is what
// makes the probe truthful: when the loop is truly stuck, /healthz does not answer at all.
import { monitorEventLoopDelay } from "node:perf_hooks";

export interface LoopDelay {
  /** Longest delay seen in the window, in milliseconds (a hold of the loop by one task). */
  readonly delay_max_ms: number;
  readonly delay_p99_ms: number;
  /** Seconds the figures cover: the current window and the one before it. */
  readonly window_s: number;
}

export interface EventLoopMonitor {
  snapshot(): LoopDelay;
  stop(): void;
}

const ms = (ns: number): number => Math.round(ns / 1e4) / 100;

export function startEventLoopMonitor(windowMs = 10_000): EventLoopMonitor {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let last = { max: 0, p99: 0 };
  // The reported figures cover the last complete window (from lastStart) and the current one.
  let lastStart = Date.now();
  let currentStart = lastStart;
  const rotate = setInterval(() => {
    last = h.count > 0 ? { max: h.max, p99: h.percentile(99) } : { max: 0, p99: 0 };
    lastStart = currentStart;
    currentStart = Date.now();
    h.reset();
  }, windowMs).unref();
  return {
    snapshot() {
      // Before its first sample the histogram has no max: report 0.
      const cur = h.count > 0 ? { max: h.max, p99: h.percentile(99) } : { max: 0, p99: 0 };
      return { delay_max_ms: ms(Math.max(cur.max, last.max)), delay_p99_ms: ms(Math.max(cur.p99, last.p99)), window_s: Math.round((Date.now() - lastStart) / 1000) };
    },
    stop() {
      clearInterval(rotate);
      h.disable();
    },
  };
}
