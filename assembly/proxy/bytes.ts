// Raw byte helpers for the filter: a single write cursor over a caller-provided region
// (JSON bodies, header pairs, log lines), ASCII output of AssemblyScript string literals
// (static data, so no allocation), JSON string escaping, decimal and hex numbers, RFC 3339
// timestamps, and reading host-returned values. Nothing here allocates managed objects.
import {
  INVALID_MEMORY_ACCESS, LOG_INFO, MAP_HTTP_CALL_RESPONSE_HEADERS, NOT_FOUND, OK,
  proxy_get_current_time_nanoseconds, proxy_get_header_map_value, proxy_get_property, proxy_log,
} from "./host";
import { arenaAlloc, hostLimit, resetHostLimit } from "../memory";

// ---- Return slots for host calls (static, read right after the call) ----
export const RET_PTR: usize = memory.data(8, 8);
export const RET_SIZE: usize = RET_PTR + 4;
const TIME_SLOT: usize = memory.data(8, 8);

/** Pointer part of the last (ptr, size) a host call returned. */
// @ts-ignore: decorator
@inline export function retPtr(): usize {
  return <usize>load<u32>(RET_PTR);
}

// @ts-ignore: decorator
@inline export function retSize(): i32 {
  return <i32>load<u32>(RET_SIZE);
}

export function nowNs(): u64 {
  store<u64>(TIME_SLOT, 0);
  proxy_get_current_time_nanoseconds(TIME_SLOT);
  return load<u64>(TIME_SLOT);
}

// ---- The write cursor ----
let wStart: usize = 0;
let wPos: usize = 0;
let wEnd: usize = 0;
let wOver: bool = false;

/** Start writing into [ptr, ptr+cap). */
export function wBegin(ptr: usize, cap: usize): void {
  wStart = ptr;
  wPos = ptr;
  wEnd = ptr + cap;
  wOver = false;
}

/** Bytes written since wBegin. */
// @ts-ignore: decorator
@inline export function wLen(): usize {
  return wPos - wStart;
}

// @ts-ignore: decorator
@inline export function wPosition(): usize {
  return wPos;
}

/** Rewind to an earlier position (drop a partly written item that did not fit). */
export function wRewind(pos: usize): void {
  wPos = pos;
  wOver = false;
}

/** True when something did not fit since wBegin/wRewind. */
// @ts-ignore: decorator
@inline export function wOverflow(): bool {
  return wOver;
}

export function wByte(b: u32): void {
  if (wPos >= wEnd) {
    wOver = true;
    return;
  }
  store<u8>(wPos, <u8>b);
  wPos++;
}

export function wBytes(ptr: usize, len: usize): void {
  if (wPos + len > wEnd) {
    wOver = true;
    return;
  }
  memory.copy(wPos, ptr, len);
  wPos += len;
}

/** An ASCII string literal, byte per character (literals are static data: no allocation). */
export function wAscii(s: string): void {
  const p = changetype<usize>(s);
  const n = <usize>s.length;
  if (wPos + n > wEnd) {
    wOver = true;
    return;
  }
  for (let i: usize = 0; i < n; i++) store<u8>(wPos + i, <u8>load<u16>(p + (i << 1)));
  wPos += n;
}

export function wU32(v: u32): void {
  if (v >= 10) wU32(v / 10);
  wByte(0x30 + (v % 10));
}

export function wU64(v: u64): void {
  if (v >= 10) wU64(v / 10);
  wByte(0x30 + <u32>(v % 10));
}

/** Zero-padded decimal of exactly `digits` digits. */
export function wPad(v: u32, digits: i32): void {
  let div: u32 = 1;
  for (let i = 1; i < digits; i++) div *= 10;
  while (div > 0) {
    wByte(0x30 + ((v / div) % 10));
    div /= 10;
  }
}

const HEX: string = "0123456789abcdef";

export function wHexByte(b: u32): void {
  wByte(<u32>load<u16>(changetype<usize>(HEX) + (((b >>> 4) & 15) << 1)));
  wByte(<u32>load<u16>(changetype<usize>(HEX) + ((b & 15) << 1)));
}

/**
 * A JSON string body (without the quotes) from raw bytes: quote, backslash and control
 * characters escaped; bytes >= 0x80 as \u00XX so the output is always valid JSON even
 * from bytes that are not UTF-8 (values reaching here are ASCII by validation).
 */
export function wJsonBytes(ptr: usize, len: usize): void {
  for (let i: usize = 0; i < len; i++) {
    const c = <u32>load<u8>(ptr + i);
    if (c == 0x22 || c == 0x5c) {
      wByte(0x5c);
      wByte(c);
    } else if (c < 0x20 || c >= 0x7f) {
      wAscii("\\u00");
      wHexByte(c);
    } else wByte(c);
  }
}

/** `"` + escaped bytes + `"`. */
export function wJsonString(ptr: usize, len: usize): void {
  wByte(0x22);
  wJsonBytes(ptr, len);
  wByte(0x22);
}

/**
 * RFC 3339 UTC with milliseconds from nanoseconds since the epoch
 * ("2026-02-23T14:30:00.000Z"). Civil date from a day count: the proleptic Gregorian
 * calendar in 400-year eras, counted from March 1 so the leap day is the last of the year.
 */
export function wTimestamp(ns: u64): void {
  const ms = ns / 1000000;
  const secs = ms / 1000;
  const days = <i64>(secs / 86400);
  const sod = <u32>(secs % 86400);
  const z = days + 719468;
  const era = z / 146097;
  const doe = <u32>(z - era * 146097);
  const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const mp = (5 * doy + 2) / 153;
  const d = doy - (153 * mp + 2) / 5 + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = <u32>(<i64>yoe + era * 400 + (m <= 2 ? 1 : 0));
  wPad(y, 4);
  wByte(0x2d);
  wPad(m, 2);
  wByte(0x2d);
  wPad(d, 2);
  wByte(0x54);
  wPad(sod / 3600, 2);
  wByte(0x3a);
  wPad((sod / 60) % 60, 2);
  wByte(0x3a);
  wPad(sod % 60, 2);
  wByte(0x2e);
  wPad(<u32>(ms % 1000), 3);
  wByte(0x5a);
}

/** Copies an ASCII literal to dst without touching the cursor; returns its length. */
export function asciiCopy(dst: usize, s: string): usize {
  const p = changetype<usize>(s);
  const n = <usize>s.length;
  for (let i: usize = 0; i < n; i++) store<u8>(dst + i, <u8>load<u16>(p + (i << 1)));
  return n;
}

// ---- Logging (saves and restores the cursor: a log line may be written mid-body) ----

let sStart: usize = 0;
let sPos: usize = 0;
let sEnd: usize = 0;
let sOver: bool = false;

function saveCursor(): void {
  sStart = wStart;
  sPos = wPos;
  sEnd = wEnd;
  sOver = wOver;
}

function restoreCursor(): void {
  wStart = sStart;
  wPos = sPos;
  wEnd = sEnd;
  wOver = sOver;
}

/** Log an ASCII literal. */
export function logAscii(level: i32, s: string): void {
  const buf = arenaAlloc(<usize>s.length);
  proxy_log(level, buf, asciiCopy(buf, s));
}

/** Most bytes of a value shown in a log line (keys and answers can be as large as the host allows). */
const LOG_VALUE_MAX: usize = 256;

/** Log literal + bytes (config keys, response bodies), escaped, at most LOG_VALUE_MAX of them. */
export function logWith(level: i32, s: string, ptr: usize, n: usize): void {
  const len = n > LOG_VALUE_MAX ? LOG_VALUE_MAX : n;
  saveCursor();
  const cap = <usize>s.length + len * 6 + 2;
  const buf = arenaAlloc(cap);
  wBegin(buf, cap);
  wAscii(s);
  wJsonBytes(ptr, len);
  proxy_log(level, buf, wLen());
  restoreCursor();
}

export function logNumber(level: i32, s: string, v: u64): void {
  saveCursor();
  const cap = <usize>s.length + 24;
  const buf = arenaAlloc(cap);
  wBegin(buf, cap);
  wAscii(s);
  wU64(v);
  proxy_log(level, buf, wLen());
  restoreCursor();
}

export function logInfo(s: string): void {
  logAscii(LOG_INFO, s);
}

// ---- Properties ----

/** An ASCII literal (a header name) into the arena, as bytes. */
function pathBytes(path: string): usize {
  const buf = arenaAlloc(<usize>path.length);
  asciiCopy(buf, path);
  return buf;
}

/** getProperty's answers. */
export const PROP_FOUND: i32 = 0;
/** Absent (NOT_FOUND), empty, or the host failed. */
export const PROP_MISSING: i32 = 1;
/** Present but longer than the caller's bound: refused without copying it (malloc said no). */
export const PROP_REFUSED: i32 = 2;

/**
 * Reads the property at the path bytes [path, path + pathLen) (static data: a request copies
 * no path), of at most `maxBytes` bytes; on PROP_FOUND leaves (ptr, size) in
 * retPtr()/retSize(). A longer value is refused by our malloc, so the host copies nothing
 * and reports InvalidMemoryAccess: PROP_REFUSED.
 */
export function getProperty(path: usize, pathLen: usize, maxBytes: usize): i32 {
  store<u32>(RET_PTR, 0);
  store<u32>(RET_SIZE, 0);
  hostLimit(maxBytes);
  const rc = proxy_get_property(path, pathLen, RET_PTR, RET_SIZE);
  resetHostLimit();
  if (rc == NOT_FOUND) return PROP_MISSING;
  if (rc == INVALID_MEMORY_ACCESS) return PROP_REFUSED;
  if (rc != OK) return PROP_MISSING;
  return retSize() > 0 ? PROP_FOUND : PROP_MISSING;
}

/**
 * A header of the http call response being handled, of at most `maxBytes` bytes, like
 * getProperty: PROP_FOUND with (ptr, size) in retPtr()/retSize(), PROP_MISSING, or
 * PROP_REFUSED when it is longer (nothing copied).
 */
export function responseHeader(name: string, maxBytes: usize): i32 {
  const k = pathBytes(name);
  store<u32>(RET_PTR, 0);
  store<u32>(RET_SIZE, 0);
  hostLimit(maxBytes);
  const rc = proxy_get_header_map_value(MAP_HTTP_CALL_RESPONSE_HEADERS, k, <usize>name.length, RET_PTR, RET_SIZE);
  resetHostLimit();
  if (rc == INVALID_MEMORY_ACCESS) return PROP_REFUSED;
  if (rc != OK) return PROP_MISSING;
  return retSize() > 0 ? PROP_FOUND : PROP_MISSING;
}

/** An integer property (8 bytes little endian, e.g. destination.port); -1 when absent or malformed. */
export function getIntProperty(path: usize, pathLen: usize): i64 {
  if (getProperty(path, pathLen, 8) != PROP_FOUND) return -1;
  if (retSize() != 8) return -1;
  return load<i64>(retPtr());
}

export { NOT_FOUND };
