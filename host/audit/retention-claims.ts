// Verify does not take retention's word for a gap. zt_audit.retention_log says which sequence
// numbers of a chain left with which dropped partition; the owner role can write that table,
// so a claim is only accepted when it agrees with the calendar: the partition's whole range
// is older than the retention period, and the records around the gap were
// written early enough for the missing ones to belong to that range (a record is accepted at
// most MAX_RECORD_AGE_MS after its decision, and at most MAX_FUTURE_SKEW_MS before it).
import { MAX_FUTURE_SKEW_MS, MAX_RECORD_AGE_MS } from "./validate.js";

export interface RetentionClaim {
  partition: string;
  /** Half-open [lo, hi) sequence ranges of the chain that left with the partition. */
  ranges: Array<[number, number]>;
}

const DAY_MS = 86_400_000;

/** The time range a partition name stands for: `decisions_yYYYYmMMdDD` (a day) or `decisions_yYYYYmMM` (a month, before migration 3). */
export function partitionRange(name: string): { start: number; end: number } | null {
  const m = /^decisions_y(\d{4})m(\d{2})(?:d(\d{2}))?$/.exec(name);
  if (!m) return null;
  const y = Number(m[1]);
  const mo = Number(m[2]) - 1;
  if (m[3] === undefined) return { start: Date.UTC(y, mo, 1), end: Date.UTC(y, mo + 1, 1) };
  const start = Date.UTC(y, mo, Number(m[3]));
  return { start, end: start + DAY_MS };
}

/** int8multirange text, e.g. `{[1,5),[7,9)}`, as half-open [lo, hi) pairs. */
export function parseMultirange(text: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const m of text.matchAll(/\[(-?\d+),(-?\d+)\)/g)) out.push([Number(m[1]), Number(m[2])]);
  return out;
}

/** Is every integer in [lo, hi] inside the claims' ranges? */
export function covered(claims: readonly RetentionClaim[] | undefined, lo: number, hi: number): boolean {
  if (!claims) return false;
  const sorted = claims.flatMap((c) => c.ranges).sort((a, b) => a[0] - b[0]);
  let next = lo;
  for (const [a, b] of sorted) {
    if (a > next) break;
    if (b > next) next = b;
    if (next > hi) return true;
  }
  return next > hi;
}

export interface GapContext {
  claims: readonly RetentionClaim[];
  retentionDays: number;
  nowMs: number;
  /** The records of the gap were written no earlier than this (epoch ms), and why. */
  writtenAfter: { ms: number; what: string } | null;
}

/** Why the claims do not explain records lo..hi, or null when they do. */
export function implausibleGap(lo: number, hi: number, g: GapContext): string | null {
  const relevant = g.claims.filter((c) => c.ranges.some(([a, b]) => a <= hi && b > lo));
  let latestEnd = -Infinity;
  for (const c of relevant) {
    const r = partitionRange(c.partition);
    if (!r) return `retention claims records ${lo}..${hi} left with "${c.partition}", which is not a partition name`;
    if (r.end + g.retentionDays * DAY_MS > g.nowMs) {
      return `retention claims records ${lo}..${hi} left with partition ${c.partition}, which ends ${new Date(r.end).toISOString()}: inside the ${g.retentionDays}-day retention period`;
    }
    latestEnd = Math.max(latestEnd, r.end);
  }
  if (g.writtenAfter && g.writtenAfter.ms >= latestEnd + MAX_RECORD_AGE_MS) {
    return (
      `retention claims records ${lo}..${hi} left with partitions ending by ${new Date(latestEnd).toISOString()}, ` +
      `but they were written after ${g.writtenAfter.what}, when a record that old was no longer accepted`
    );
  }
  return null;
}

/** The earliest time a record following `ts` in a chain can have been written: a record may carry a timestamp up to MAX_FUTURE_SKEW_MS ahead. */
export function writtenNoEarlierThan(ts: number): number {
  return ts - MAX_FUTURE_SKEW_MS;
}
