// Splits a SPIFFE ID (bytes) into segments and validates it exactly as compiler/spiffe.ts
// does: segment 0 is the trust domain, the rest are path segments. Writes one SEG_STRIDE
// record per segment into `segs` (offset, length, path hash of the ID up to that segment;
// memory.ts); returns the number of segments, or -1 when the ID is invalid.
import { ID_SEED, MAX_ID_BYTES, MAX_TRUST_DOMAIN_BYTES } from "./layout";
import { segHash } from "./hash";
import { MAX_SEGMENTS, SEG_HASH, SEG_LEN, SEG_OFF, SEG_STRIDE } from "./memory";

// "spiffe://"
// @ts-ignore: decorator
@inline function isScheme(p: usize): bool {
  return load<u8>(p) == 0x73 && load<u8>(p + 1) == 0x70 && load<u8>(p + 2) == 0x69 && load<u8>(p + 3) == 0x66 &&
    load<u8>(p + 4) == 0x66 && load<u8>(p + 5) == 0x65 && load<u8>(p + 6) == 0x3a && load<u8>(p + 7) == 0x2f && load<u8>(p + 8) == 0x2f;
}

const TD_CHAR: u8 = 1; // [a-z0-9.-_]
const PATH_CHAR: u8 = 2; // [a-zA-Z0-9.-_]
/** Character classes of the 256 byte values: one load per byte instead of a chain of compares. */
const charClass = memory.data(256);

/** Fills the class table (static data, no allocation); boot runs it once. */
export function initCharClasses(): void {
  for (let c: u32 = 0; c < 256; c++) {
    const lower = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2e || c == 0x2d || c == 0x5f;
    const upper = c >= 0x41 && c <= 0x5a;
    store<u8>(charClass + c, (lower ? TD_CHAR | PATH_CHAR : 0) | (upper ? PATH_CHAR : 0));
  }
}

// @ts-ignore: decorator
@inline function record(segs: usize, n: i32, ptr: usize, start: usize, len: i32, h: u32): void {
  const at = segs + <usize>n * SEG_STRIDE;
  store<u32>(at + SEG_OFF, <u32>(start - ptr));
  store<u32>(at + SEG_LEN, <u32>len);
  store<u32>(at + SEG_HASH, h);
}

export function splitSpiffeId(ptr: usize, len: i32, segs: usize): i32 {
  if (len < 10 || len > MAX_ID_BYTES) return -1;
  if (!isScheme(ptr)) return -1;
  const cls = charClass;
  const end = ptr + <usize>len;
  let p = ptr + 9;
  let start = p;
  while (p < end) {
    const c = <usize>load<u8>(p);
    if (!(load<u8>(cls + c) & TD_CHAR)) {
      if (c == 0x2f) break;
      return -1;
    }
    p++;
  }
  const tdLen = <i32>(p - start);
  if (tdLen == 0 || tdLen > MAX_TRUST_DOMAIN_BYTES) return -1;
  let h = segHash(<u32>ID_SEED, start, tdLen);
  record(segs, 0, ptr, start, tdLen, h);
  let n = 1;
  while (p < end) {
    p++; // the slash
    start = p;
    while (p < end) {
      const c = <usize>load<u8>(p);
      if (!(load<u8>(cls + c) & PATH_CHAR)) {
        if (c == 0x2f) break;
        return -1;
      }
      p++;
    }
    const segLen = <i32>(p - start);
    if (segLen == 0) return -1; // empty segment or trailing slash
    if (load<u8>(start) == 0x2e && (segLen == 1 || (segLen == 2 && load<u8>(start + 1) == 0x2e))) return -1; // "." or ".."
    if (n >= MAX_SEGMENTS) return -1;
    h = segHash(h, start, segLen);
    record(segs, n, ptr, start, segLen, h);
    n++;
  }
  return n;
}
