// The plugin configuration: a JSON object read once per proxy_on_configure. A small
// tolerant reader (whitespace anywhere, unknown keys of any type skipped, last duplicate
// wins) that is strict about the keys it knows: a bad value makes configure return false,
// so Envoy rejects the filter config instead of running with a guessed setting.
// An empty configuration means: enforce, own identity from the local certificate, no audit
// shipping. Keys (docs/envoy.md): mode, identity, ingest_cluster, ingest_path,
// ingest_authority, ingest_token, ingest_timeout_ms, flush_interval_ms, max_buffer_records,
// max_buffer_bytes, max_batch_records, max_batch_bytes, retry_max_ms, drain_timeout_ms,
// policy_version, origin, and the policy sync's sync_cluster, sync_path, sync_authority,
// sync_token, sync_wait_ms, sync_retry_ms, sync_retry_max_ms, sync_max_image_bytes.
import { LOG_ERROR, LOG_WARN } from "./host";
import { asciiCopy, logAscii, logWith } from "./bytes";
import { CFG_AREA_SIZE, MODE_ENFORCE, MODE_OBSERVE, Root } from "./root";
import { splitSpiffeId } from "../spiffe";
import { MAX_SEGMENTS, SEG_STRIDE } from "../memory";

// ---- parser state (one parse at a time) ----
let jp: usize = 0;
let je: usize = 0;
let area: usize = 0;
let areaUsed: usize = 0;
let strPtr: usize = 0;
let strLen: i32 = 0;
let numVal: u64 = 0;
let segScratch: usize = 0;

/** Scratch for SPIFFE validation (segment table), allocated on first use at configure time. */
export function spiffeScratch(): usize {
  if (segScratch == 0) segScratch = heap.alloc(<usize>MAX_SEGMENTS * SEG_STRIDE);
  return segScratch;
}

export function isSpiffeId(ptr: usize, len: i32): bool {
  return splitSpiffeId(ptr, len, spiffeScratch()) > 0;
}

function fail(msg: string): bool {
  logAscii(LOG_ERROR, msg);
  return false;
}

function failKey(msg: string, kp: usize, kl: i32): bool {
  logWith(LOG_ERROR, msg, kp, <usize>kl);
  return false;
}

function skipWs(): void {
  while (jp < je) {
    const c = load<u8>(jp);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return;
    jp++;
  }
}

function hexVal(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  if (c >= 0x41 && c <= 0x46) return <i32>(c - 0x41 + 10);
  return -1;
}

function read4Hex(): i32 {
  if (jp + 4 > je) return -1;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const h = hexVal(<u32>load<u8>(jp + <usize>i));
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  jp += 4;
  return v;
}

/** Room kept free for the defaults written after the parse. */
const DEFAULTS_RESERVE: usize = 64;

/** False while skipping the value of an unknown key: validate, keep nothing. */
let storing: bool = true;

function put(b: u32): bool {
  if (!storing) return true;
  if (areaUsed >= CFG_AREA_SIZE - DEFAULTS_RESERVE) return false;
  store<u8>(area + areaUsed, <u8>b);
  areaUsed++;
  return true;
}

function putCodePoint(cp: u32): bool {
  if (cp < 0x80) return put(cp);
  if (cp < 0x800) return put(0xc0 | (cp >> 6)) && put(0x80 | (cp & 0x3f));
  if (cp < 0x10000) return put(0xe0 | (cp >> 12)) && put(0x80 | ((cp >> 6) & 0x3f)) && put(0x80 | (cp & 0x3f));
  return put(0xf0 | (cp >> 18)) && put(0x80 | ((cp >> 12) & 0x3f)) && put(0x80 | ((cp >> 6) & 0x3f)) && put(0x80 | (cp & 0x3f));
}

/** Parses a string at jp (which is at the opening quote), decoded into the config area. */
function parseString(): bool {
  jp++; // opening quote
  strPtr = area + areaUsed;
  const start = areaUsed;
  while (true) {
    if (jp >= je) return fail("zt: configuration: unterminated string");
    const c = <u32>load<u8>(jp++);
    if (c == 0x22) break;
    if (c < 0x20) return fail("zt: configuration: control character inside a string");
    if (c != 0x5c) {
      if (!put(c)) return fail("zt: configuration is too large");
      continue;
    }
    if (jp >= je) return fail("zt: configuration: unterminated escape");
    const e = <u32>load<u8>(jp++);
    let out: i32 = -1;
    if (e == 0x22 || e == 0x5c || e == 0x2f) out = <i32>e;
    else if (e == 0x62) out = 8;
    else if (e == 0x66) out = 12;
    else if (e == 0x6e) out = 10;
    else if (e == 0x72) out = 13;
    else if (e == 0x74) out = 9;
    else if (e == 0x75) {
      let cp = read4Hex();
      if (cp < 0) return fail("zt: configuration: bad \\u escape");
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (jp + 2 > je || load<u8>(jp) != 0x5c || load<u8>(jp + 1) != 0x75) return fail("zt: configuration: lone surrogate");
        jp += 2;
        const lo = read4Hex();
        if (lo < 0xdc00 || lo > 0xdfff) return fail("zt: configuration: lone surrogate");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      } else if (cp >= 0xdc00 && cp <= 0xdfff) return fail("zt: configuration: lone surrogate");
      if (!putCodePoint(<u32>cp)) return fail("zt: configuration is too large");
      continue;
    } else return fail("zt: configuration: bad escape");
    if (!put(<u32>out)) return fail("zt: configuration is too large");
  }
  strLen = <i32>(areaUsed - start);
  return true;
}

/** Non-negative integer (no sign, fraction or exponent). */
function parseUint(): bool {
  const start = jp;
  let v: u64 = 0;
  while (jp < je) {
    const c = <u32>load<u8>(jp);
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + <u64>(c - 0x30);
    if (v > 9007199254740991) return false;
    jp++;
  }
  if (jp == start) return false;
  if (jp < je) {
    const c = load<u8>(jp);
    if (c == 0x2e || c == 0x65 || c == 0x45) return false;
  }
  numVal = v;
  return true;
}

function literal(s: string): bool {
  const n = <usize>s.length;
  if (jp + n > je) return false;
  for (let i: usize = 0; i < n; i++) {
    if (<u32>load<u8>(jp + i) != <u32>load<u16>(changetype<usize>(s) + (i << 1))) return false;
  }
  jp += n;
  return true;
}

/** Skips any JSON value (for unknown keys), validating its syntax. */
function skipValue(depth: i32): bool {
  if (depth > 32) return fail("zt: configuration nests too deeply");
  skipWs();
  if (jp >= je) return fail("zt: configuration: value expected");
  const c = load<u8>(jp);
  if (c == 0x22) {
    storing = false;
    const ok = parseString();
    storing = true;
    return ok;
  }
  if (c == 0x7b || c == 0x5b) {
    const close: u8 = c == 0x7b ? 0x7d : 0x5d;
    jp++;
    skipWs();
    if (jp < je && load<u8>(jp) == close) {
      jp++;
      return true;
    }
    while (true) {
      if (c == 0x7b) {
        skipWs();
        if (jp >= je || load<u8>(jp) != 0x22) return fail("zt: configuration: object key expected");
        if (!skipValue(depth + 1)) return false;
        skipWs();
        if (jp >= je || load<u8>(jp) != 0x3a) return fail("zt: configuration: ':' expected");
        jp++;
      }
      if (!skipValue(depth + 1)) return false;
      skipWs();
      if (jp >= je) return fail("zt: configuration: unterminated object or array");
      const d = load<u8>(jp++);
      if (d == close) return true;
      if (d != 0x2c) return fail("zt: configuration: ',' expected");
    }
  }
  if (c == 0x74) return literal("true") || fail("zt: configuration: bad literal");
  if (c == 0x66) return literal("false") || fail("zt: configuration: bad literal");
  if (c == 0x6e) return literal("null") || fail("zt: configuration: bad literal");
  if (c == 0x2d || (c >= 0x30 && c <= 0x39)) {
    jp++;
    while (jp < je) {
      const n = load<u8>(jp);
      if (!((n >= 0x30 && n <= 0x39) || n == 0x2e || n == 0x65 || n == 0x45 || n == 0x2b || n == 0x2d)) break;
      jp++;
    }
    return true;
  }
  return fail("zt: configuration: unexpected character");
}

function keyIs(kp: usize, kl: i32, s: string): bool {
  if (kl != s.length) return false;
  for (let i = 0; i < kl; i++) {
    if (<u32>load<u8>(kp + <usize>i) != <u32>load<u16>(changetype<usize>(s) + (<usize>i << 1))) return false;
  }
  return true;
}

/** Printable ASCII (0x20..0x7e, or 0x21..0x7e without spaces), 1..max bytes. */
function printable(p: usize, n: i32, max: i32, spaces: bool): bool {
  if (n < 1 || n > max) return false;
  const lowest: u32 = spaces ? 0x20 : 0x21;
  for (let i = 0; i < n; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c > 0x7e || c < lowest) return false;
  }
  return true;
}

function wantString(kp: usize, kl: i32): bool {
  skipWs();
  if (jp >= je || load<u8>(jp) != 0x22) return failKey("zt: configuration: must be a string: ", kp, kl);
  return parseString();
}

function wantUint(kp: usize, kl: i32, lo: u64, hi: u64): bool {
  skipWs();
  if (!parseUint() || numVal < lo || numVal > hi) return failKey("zt: configuration: must be an integer in the allowed range: ", kp, kl);
  return true;
}

/** A string of printable ASCII without spaces, 1..max bytes (cluster names, tokens). */
function wantPrintable(kp: usize, kl: i32, max: i32): bool {
  if (!wantString(kp, kl)) return false;
  if (!printable(strPtr, strLen, max, false)) return failKey("zt: configuration: bad value for ", kp, kl);
  return true;
}

const SYNC_CLUSTER: i32 = 0;
const SYNC_AUTHORITY: i32 = 1;
const SYNC_TOKEN: i32 = 2;
const SYNC_PATH: i32 = 3;

/** Stores the string just parsed as one of the sync settings. */
function setSync(r: Root, which: i32): bool {
  if (which == SYNC_CLUSTER) {
    r.syncClusterPtr = strPtr;
    r.syncClusterLen = strLen;
  } else if (which == SYNC_AUTHORITY) {
    r.syncAuthorityPtr = strPtr;
    r.syncAuthorityLen = strLen;
  } else if (which == SYNC_TOKEN) {
    r.syncTokenPtr = strPtr;
    r.syncTokenLen = strLen;
  } else {
    r.syncPathPtr = strPtr;
    r.syncPathLen = strLen;
  }
  return true;
}

/** Copies an ASCII literal default into the config area; returns its pointer. */
function defaultString(s: string): usize {
  const p = area + areaUsed;
  areaUsed += asciiCopy(p, s);
  return p;
}

/**
 * Parses [ptr, ptr+len) into `r`. Returns false (and logs why) on any invalid value; the
 * caller then returns false from proxy_on_configure.
 */
export function parseConfig(r: Root, ptr: usize, len: usize): bool {
  jp = ptr;
  je = ptr + len;
  area = r.cfgArea;
  areaUsed = 0;
  storing = true;
  r.mode = MODE_ENFORCE;
  r.identityLen = 0;
  r.clusterLen = 0;
  r.pathLen = 0;
  r.authorityLen = 0;
  r.tokenLen = 0;
  r.versionLen = 0;
  r.originLen = 0;
  r.flushMs = 1000;
  r.timeoutMs = 5000;
  r.maxRecords = 10000;
  r.maxBufferBytes = 1048576;
  r.maxBatchRecords = 1000;
  r.maxBatchBytes = 262144;
  r.retryMaxMs = 60000;
  r.drainTimeoutMs = 60000;
  r.syncClusterLen = 0;
  r.syncPathLen = 0;
  r.syncAuthorityLen = 0;
  r.syncTokenLen = 0;
  r.syncWaitMs = 30000;
  r.syncRetryMs = 1000;
  r.syncRetryMaxMs = 60000;
  r.syncMaxImageBytes = 67108864;

  skipWs();
  if (jp < je) {
    if (load<u8>(jp) != 0x7b) return fail("zt: configuration must be a JSON object");
    jp++;
    skipWs();
    let first = true;
    while (true) {
      skipWs();
      if (jp >= je) return fail("zt: configuration: unterminated object");
      if (first && load<u8>(jp) == 0x7d) {
        jp++;
        break;
      }
      first = false;
      if (load<u8>(jp) != 0x22) return fail("zt: configuration: object key expected");
      const keyMark = areaUsed;
      if (!parseString()) return false;
      const kp = strPtr;
      const kl = strLen;
      skipWs();
      if (jp >= je || load<u8>(jp) != 0x3a) return fail("zt: configuration: ':' expected");
      jp++;
      if (!applyKey(r, kp, kl)) return false;
      // Keys only need to live until applied.
      if (areaUsed == keyMark + <usize>kl) areaUsed = keyMark;
      skipWs();
      if (jp >= je) return fail("zt: configuration: unterminated object");
      const d = load<u8>(jp++);
      if (d == 0x7d) break;
      if (d != 0x2c) return fail("zt: configuration: ',' expected");
    }
    skipWs();
    if (jp != je) return fail("zt: configuration: trailing characters after the object");
  }

  if (r.pathLen == 0) {
    r.pathPtr = defaultString("/v1/audit/ingest");
    r.pathLen = 16;
  }
  if (r.authorityLen == 0 && r.clusterLen > 0) {
    r.authorityPtr = r.clusterPtr;
    r.authorityLen = r.clusterLen;
  }
  if (r.versionLen == 0) {
    r.versionPtr = defaultString("unknown");
    r.versionLen = 7;
  }
  if (r.originLen == 0) {
    r.originPtr = defaultString("envoy");
    r.originLen = 5;
  }
  if (r.clusterLen == 0) logAscii(LOG_WARN, "zt: no ingest_cluster configured: decisions are counted but not shipped to the audit trail");
  if (r.syncClusterLen > 0) {
    if (r.syncPathLen == 0) {
      r.syncPathPtr = defaultString("/v1/policy-image");
      r.syncPathLen = 16;
    }
    if (r.syncAuthorityLen == 0) {
      // The ingest authority when both go to the same cluster, else the cluster's name.
      const same = r.clusterLen == r.syncClusterLen && memory.compare(r.clusterPtr, r.syncClusterPtr, <usize>r.clusterLen) == 0;
      r.syncAuthorityPtr = same ? r.authorityPtr : r.syncClusterPtr;
      r.syncAuthorityLen = same ? r.authorityLen : r.syncClusterLen;
    }
    if (r.syncTokenLen == 0) {
      r.syncTokenPtr = r.tokenPtr;
      r.syncTokenLen = r.tokenLen;
    }
  }
  return true;
}

/** Parses the value of one key at jp into r. */
function applyKey(r: Root, kp: usize, kl: i32): bool {
  if (keyIs(kp, kl, "mode")) {
    if (!wantString(kp, kl)) return false;
    if (keyIs(strPtr, strLen, "enforce")) r.mode = MODE_ENFORCE;
    else if (keyIs(strPtr, strLen, "observe")) r.mode = MODE_OBSERVE;
    else return fail("zt: configuration: mode must be \"enforce\" or \"observe\"");
    return true;
  }
  if (keyIs(kp, kl, "identity")) {
    if (!wantString(kp, kl)) return false;
    if (!isSpiffeId(strPtr, strLen)) return failKey("zt: configuration: identity is not a valid SPIFFE ID: ", strPtr, strLen);
    r.identityPtr = strPtr;
    r.identityLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "ingest_cluster")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 255, false)) return failKey("zt: configuration: bad value for ", kp, kl);
    r.clusterPtr = strPtr;
    r.clusterLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "ingest_path")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 1024, false) || load<u8>(strPtr) != 0x2f) return failKey("zt: configuration: must be a path starting with '/': ", kp, kl);
    r.pathPtr = strPtr;
    r.pathLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "ingest_authority")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 255, false)) return failKey("zt: configuration: bad value for ", kp, kl);
    r.authorityPtr = strPtr;
    r.authorityLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "ingest_token")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 4096, false)) return failKey("zt: configuration: bad value for ", kp, kl);
    r.tokenPtr = strPtr;
    r.tokenLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "policy_version")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 256, false)) return failKey("zt: configuration: bad value for ", kp, kl);
    r.versionPtr = strPtr;
    r.versionLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "origin")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 256, true)) return failKey("zt: configuration: bad value for ", kp, kl);
    r.originPtr = strPtr;
    r.originLen = strLen;
    return true;
  }
  if (keyIs(kp, kl, "ingest_timeout_ms")) {
    if (!wantUint(kp, kl, 1, 600000)) return false;
    r.timeoutMs = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "flush_interval_ms")) {
    if (!wantUint(kp, kl, 10, 3600000)) return false;
    r.flushMs = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "max_buffer_records")) {
    if (!wantUint(kp, kl, 1, 1000000)) return false;
    r.maxRecords = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "max_buffer_bytes")) {
    if (!wantUint(kp, kl, 65536, 268435456)) return false;
    r.maxBufferBytes = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "max_batch_records")) {
    // The ingest endpoint takes at most 5000 records per request.
    if (!wantUint(kp, kl, 1, 5000)) return false;
    r.maxBatchRecords = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "max_batch_bytes")) {
    // At least one worst-case record (two escaped 2 KiB IDs) must fit in a batch.
    if (!wantUint(kp, kl, 65536, 16777216)) return false;
    r.maxBatchBytes = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "sync_cluster")) return wantPrintable(kp, kl, 255) && setSync(r, SYNC_CLUSTER);
  if (keyIs(kp, kl, "sync_authority")) return wantPrintable(kp, kl, 255) && setSync(r, SYNC_AUTHORITY);
  if (keyIs(kp, kl, "sync_token")) return wantPrintable(kp, kl, 4096) && setSync(r, SYNC_TOKEN);
  if (keyIs(kp, kl, "sync_path")) {
    if (!wantString(kp, kl)) return false;
    if (!printable(strPtr, strLen, 1024, false) || load<u8>(strPtr) != 0x2f) return failKey("zt: configuration: must be a path starting with '/': ", kp, kl);
    return setSync(r, SYNC_PATH);
  }
  if (keyIs(kp, kl, "sync_wait_ms")) {
    if (!wantUint(kp, kl, 1000, 300000)) return false;
    r.syncWaitMs = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "sync_retry_ms")) {
    if (!wantUint(kp, kl, 100, 600000)) return false;
    r.syncRetryMs = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "sync_retry_max_ms")) {
    if (!wantUint(kp, kl, 100, 3600000)) return false;
    r.syncRetryMaxMs = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "sync_max_image_bytes")) {
    if (!wantUint(kp, kl, 65536, 1073741824)) return false;
    r.syncMaxImageBytes = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "retry_max_ms")) {
    if (!wantUint(kp, kl, 100, 3600000)) return false;
    r.retryMaxMs = <u32>numVal;
    return true;
  }
  if (keyIs(kp, kl, "drain_timeout_ms")) {
    if (!wantUint(kp, kl, 0, 3600000)) return false;
    r.drainTimeoutMs = <u32>numVal;
    return true;
  }
  logWith(LOG_WARN, "zt: configuration: ignoring unknown key ", kp, <usize>kl);
  return skipValue(0);
}
