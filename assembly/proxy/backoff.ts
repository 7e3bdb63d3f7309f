// Exponential backoff with a cap and jitter, for every retry the filter makes (audit ingest,
// policy sync): the k-th failure in a row waits base * 2^(k-1), at most `maxMs`, times a
// random factor in [1/2, 1] so that sidecars that failed together do not retry together.
import { randomU32 } from "./random";

/** Nanoseconds to wait after the `failures`-th failure in a row (failures >= 1). */
export function backoffNs(failures: u32, baseMs: u32, maxMs: u32): u64 {
  let ms: u64 = <u64>(baseMs > 0 ? baseMs : 1);
  for (let i: u32 = 1; i < failures && ms < <u64>maxMs; i++) ms <<= 1;
  if (ms > <u64>maxMs) ms = <u64>maxMs;
  const ns = ms * 1000000;
  // Jitter: ns * (32768 + r) / 65536 with r in [0, 32768).
  return (ns * (32768 + <u64>(randomU32() & 32767))) >> 16;
}
