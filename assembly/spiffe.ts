// Splits a SPIFFE ID (bytes) into segments and validates it exactly as compiler/spiffe.ts
// does: segment 0 is the trust domain, the rest are path segments. Writes (offset, length)
// pairs into `segs`; returns the number of segments, or -1 when the ID is invalid.
import { MAX_ID_BYTES, MAX_TRUST_DOMAIN_BYTES } from "./layout";
import { MAX_SEGMENTS } from "./memory";

// "spiffe://"
// @ts-ignore: decorator
@inline function isScheme(p: usize): bool {
  return load<u8>(p) == 0x73 && load<u8>(p + 1) == 0x70 && load<u8>(p + 2) == 0x69 && load<u8>(p + 3) == 0x66 &&
    load<u8>(p + 4) == 0x66 && load<u8>(p + 5) == 0x65 && load<u8>(p + 6) == 0x3a && load<u8>(p + 7) == 0x2f && load<u8>(p + 8) == 0x2f;
}

// @ts-ignore: decorator
@inline function isTrustDomainChar(c: u32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2e || c == 0x2d || c == 0x5f;
}

// @ts-ignore: decorator
@inline function isPathChar(c: u32): bool {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a);
}

export function splitSpiffeId(ptr: usize, len: i32, segs: usize): i32 {
  if (len < 10 || len > MAX_ID_BYTES) return -1;
  if (!isScheme(ptr)) return -1;
  const end = ptr + <usize>len;
  let p = ptr + 9;
  let start = p;
  while (p < end && load<u8>(p) != 0x2f) {
    if (!isTrustDomainChar(<u32>load<u8>(p))) return -1;
    p++;
  }
  const tdLen = <i32>(p - start);
  if (tdLen == 0 || tdLen > MAX_TRUST_DOMAIN_BYTES) return -1;
  store<u32>(segs, <u32>(start - ptr));
  store<u32>(segs + 4, <u32>tdLen);
  let n = 1;
  while (p < end) {
    p++; // the slash
    start = p;
    while (p < end && load<u8>(p) != 0x2f) {
      if (!isPathChar(<u32>load<u8>(p))) return -1;
      p++;
    }
    const segLen = <i32>(p - start);
    if (segLen == 0) return -1; // empty segment or trailing slash
    if (load<u8>(start) == 0x2e && (segLen == 1 || (segLen == 2 && load<u8>(start + 1) == 0x2e))) return -1; // "." or ".."
    if (n >= MAX_SEGMENTS) return -1;
    store<u32>(segs + <usize>n * 8, <u32>(start - ptr));
    store<u32>(segs + <usize>n * 8 + 4, <u32>segLen);
    n++;
  }
  return n;
}
