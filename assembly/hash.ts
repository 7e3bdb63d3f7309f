// Path hashes (assembly/layout.ts, "Path hashes"): the evaluator's copy of compiler/hash.ts.
// Both must give the same u32 for the same bytes; the differential tests would catch a
// disagreement as failed lookups.
import { GLOB_SALT, H_C1, H_C2, H_C3, H_F1, H_F2, STAR_SALT } from "./layout";

// @ts-ignore: decorator
@inline function fmix32(x: u32): u32 {
  let h = x;
  h ^= h >>> 16;
  h *= <u32>H_F1;
  h ^= h >>> 13;
  h *= <u32>H_F2;
  h ^= h >>> 16;
  return h;
}

// @ts-ignore: decorator
@inline function block(h: u32, w: u32): u32 {
  let k = w * <u32>H_C1;
  k = rotl<u32>(k, 15) * <u32>H_C2;
  return rotl<u32>(h ^ k, 13) * 5 + <u32>H_C3;
}

/** The path hash of the child of a node with hash `h` along the segment [ptr, ptr+len). */
export function segHash(h: u32, ptr: usize, len: i32): u32 {
  let i = 0;
  for (; i + 4 <= len; i += 4) h = block(h, load<u32>(ptr + <usize>i));
  const rest = len - i;
  // Reads up to 3 bytes past the segment: always inside the I/O buffer, arena or image.
  if (rest > 0) h = block(h, load<u32>(ptr + <usize>i) & ((<u32>1 << (<u32>rest << 3)) - 1));
  return fmix32(h ^ <u32>len);
}

// @ts-ignore: decorator
@inline export function starHash(h: u32): u32 {
  return fmix32(h ^ <u32>STAR_SALT);
}

// @ts-ignore: decorator
@inline export function globKey(h: u32): u32 {
  return fmix32(h ^ <u32>GLOB_SALT);
}
