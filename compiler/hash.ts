// Path hashes (assembly/layout.ts, "Path hashes"): the compiler's copy of assembly/hash.ts.
import * as L from "../assembly/layout.js";

function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, L.H_F1);
  h ^= h >>> 13;
  h = Math.imul(h, L.H_F2);
  h ^= h >>> 16;
  return h >>> 0;
}

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));

function block(h: number, w: number): number {
  let k = Math.imul(w, L.H_C1);
  k = Math.imul(rotl(k, 15), L.H_C2);
  return (Math.imul(rotl(h ^ k, 13), 5) + L.H_C3) | 0;
}

/** The path hash of the child of a node with hash `h` along `bytes` (one segment). */
export function segHash(h: number, bytes: Uint8Array): number {
  const len = bytes.length;
  let i = 0;
  for (; i + 4 <= len; i += 4) h = block(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
  if (i < len) {
    let w = 0;
    for (let j = 0; i + j < len; j++) w |= bytes[i + j]! << (8 * j);
    h = block(h, w);
  }
  return fmix32(h ^ len);
}

export const starHash = (h: number): number => fmix32(h ^ L.STAR_SALT);
export const globKey = (h: number): number => fmix32(h ^ L.GLOB_SALT);

export function pairHash(srcKey: number, dstKey: number): number {
  let h = Math.imul(srcKey, L.MIX_A) ^ dstKey;
  h = Math.imul(h ^ (h >>> 15), L.MIX_B);
  return (h ^ (h >>> 13)) >>> 0;
}

/** The partner-filter bit of a destination pattern key (layout.ts P_PARTNER_SHIFT). */
export const partnerBit = (dstKey: number): number => 1 << (dstKey >>> L.PARTNER_BIT_SHIFT);
