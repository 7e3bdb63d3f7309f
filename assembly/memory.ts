// Memory the evaluator owns. The runtime is `stub` (a bump allocator that never frees), so
// everything here is allocated once at start-up; per-call work uses these fixed buffers and
// the arena, never managed objects.
import { IO_BUFFER_SIZE, MAX_ID_BYTES } from "./layout";

/**
 * Segment tables for the two IDs of a service request, SEG_STRIDE bytes per segment:
 * offset, length, and the path hash of the ID's prefix up to and including the segment.
 */
export const MAX_SEGMENTS: i32 = MAX_ID_BYTES / 2 + 2;
export const SEG_STRIDE: usize = 16;
export const SEG_OFF: usize = 0;
export const SEG_LEN: usize = 4;
export const SEG_HASH: usize = 8;

let ioBuffer: usize = 0;
let srcSegs: usize = 0;
let dstSegs: usize = 0;

const ARENA_SIZE: usize = 65536;
let arenaStart: usize = 0;
let arenaNext: usize = 0;
let arenaEnd: usize = 0;

/**
 * The largest value a host may hand us in one `malloc` (a plugin configuration, a response
 * header). Larger ones are refused (malloc returns 0: the host call fails with
 * InvalidMemoryAccess, nothing is copied). Callers that know a smaller bound for the value
 * they ask for set it with hostLimit() around the host call.
 */
export const MAX_HOST_VALUE: usize = 1 << 20;
/** The large-value region never grows beyond this: one callback's large values must fit. */
const LARGE_MAX: usize = 2 * MAX_HOST_VALUE + 64;
let largeStart: usize = 0;
let largeNext: usize = 0;
let largeEnd: usize = 0;
let limit: usize = MAX_HOST_VALUE;
/** A region the next host value goes to instead (a policy image into its slot), and its size. */
let target: usize = 0;
let targetSize: usize = 0;

/** Called once by boot, after the policy image is reserved. */
export function initBuffers(): void {
  if (ioBuffer != 0) return;
  ioBuffer = heap.alloc(IO_BUFFER_SIZE);
  srcSegs = heap.alloc(<usize>MAX_SEGMENTS * SEG_STRIDE);
  dstSegs = heap.alloc(<usize>MAX_SEGMENTS * SEG_STRIDE);
  arenaStart = heap.alloc(ARENA_SIZE);
  arenaNext = arenaStart;
  arenaEnd = arenaStart + ARENA_SIZE;
}

export function ioPtr(): usize {
  return ioBuffer;
}

export function srcSegPtr(): usize {
  return srcSegs;
}

export function dstSegPtr(): usize {
  return dstSegs;
}

/**
 * Values too big for the arena go to one region reused by every callback (reset with the
 * arena). When a callback needs more than it holds, a region twice as large replaces it (the
 * old one is abandoned: the stub runtime never frees) up to LARGE_MAX; at that size a
 * callback that needs still more is refused. So the large values of any number of callbacks
 * cost less than 2 x LARGE_MAX in total. Returns 0 when refused.
 */
function largeAlloc(padded: usize): usize {
  let p = (largeNext + 15) & ~(<usize>15);
  if (largeStart != 0 && p + padded <= largeEnd) {
    largeNext = p + padded;
    return p;
  }
  const had = largeEnd - largeStart;
  if (had >= LARGE_MAX || padded + 16 > LARGE_MAX) return 0;
  let size = had == 0 ? ARENA_SIZE * 2 : had * 2;
  while (size < padded + 16) size *= 2;
  if (size > LARGE_MAX) size = LARGE_MAX;
  largeStart = heap.alloc(size);
  largeEnd = largeStart + size;
  p = (largeStart + 15) & ~(<usize>15);
  largeNext = p + padded;
  return p;
}

// @ts-ignore: decorator
@inline function bump(size: usize): usize {
  // 8 spare bytes: the evaluator reads segments a word at a time (trie.ts prefixOf).
  const padded = size + 8;
  const p = (arenaNext + 15) & ~(<usize>15);
  if (p + padded <= arenaEnd) {
    arenaNext = p + padded;
    return p;
  }
  return largeAlloc(padded);
}

/**
 * Memory for the module's own per-callback scratch (reply bodies, header pairs, log lines),
 * 16-byte aligned, valid until the callback returns. Those are small by construction; should
 * one ever not fit, the heap serves it (and keeps it: never on a per-request path).
 */
export function arenaAlloc(size: usize): usize {
  const p = bump(size);
  return p != 0 ? p : heap.alloc(size + 8);
}

/**
 * proxy-wasm `malloc`: where the host writes a value it returns. Within the current limit
 * (hostLimit), from the arena or the large-value region; above it, or when the region is
 * exhausted, 0 (the host then fails the call without copying anything).
 */
export function hostAlloc(size: usize): usize {
  if (target != 0) {
    // One value, straight into the region named by hostTarget: no copy, no arena.
    const p = size <= targetSize ? target : 0;
    target = 0;
    return p;
  }
  if (size > limit) return 0;
  return bump(size);
}

/** The next value the host returns is written at `ptr` (at most `size` bytes; larger is refused). */
export function hostTarget(ptr: usize, size: usize): void {
  target = ptr;
  targetSize = size;
}

/** The largest value the next host calls may return (until resetHostLimit). */
export function hostLimit(bytes: usize): void {
  limit = bytes < MAX_HOST_VALUE ? bytes : MAX_HOST_VALUE;
}

export function resetHostLimit(): void {
  limit = MAX_HOST_VALUE;
  target = 0;
}

/** Forget everything handed out since the last reset (start of each host callback). */
export function arenaReset(): void {
  arenaNext = arenaStart;
  largeNext = largeStart;
  limit = MAX_HOST_VALUE;
  target = 0;
}
