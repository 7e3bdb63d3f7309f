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
 * Bump allocation for values a host hands us within one callback (proxy-wasm `malloc`).
 * 16-byte aligned. When the arena is full the heap serves the request (and keeps it: the
 * stub runtime never frees), which only happens for unusually large host values.
 */
export function arenaAlloc(size: usize): usize {
  // 8 spare bytes: the evaluator reads segments a word at a time (trie.ts prefixOf).
  const padded = size + 8;
  const p = (arenaNext + 15) & ~(<usize>15);
  if (p + padded <= arenaEnd) {
    arenaNext = p + padded;
    return p;
  }
  return heap.alloc(padded);
}

/** Forget everything handed out since the last reset (start of each host callback). */
export function arenaReset(): void {
  arenaNext = arenaStart;
}
