// Decision records: appended in a compact binary form on the request path (one memory.copy
// of the two IDs, no formatting), turned into AuditRecord JSON on the tick and shipped with
// proxy_http_call to POST /v1/audit/ingest as {"records": [...]}.
//
// Delivery: one batch in flight per root. 2xx: the batch leaves the buffer. No response
// (engine unreachable, reset, timeout), 5xx, 401, 403, 408 or 429: the batch stays and is
// retried after an exponential backoff (backoff.ts; ticks check it), with the same decision
// ids: an id is drawn when the record is made, so a batch the engine committed but whose
// answer was lost is stored once (the trail dedupes on the id). Any other status (400, 413, 422...): retrying cannot help, the
// batch is dropped and counted. The buffer is bounded by max_buffer_records and
// max_buffer_bytes; when full, new records are dropped and counted (zt.audit.dropped), so
// an unreachable engine costs memory up to the bound and never blocks traffic.
import {
  LOG_ERROR, LOG_WARN, BUFFER_HTTP_CALL_RESPONSE_BODY, OK,
  proxy_get_buffer_bytes, proxy_http_call,
} from "./host";
import {
  PROP_FOUND, RET_PTR, RET_SIZE, asciiCopy, logNumber, responseHeader, logWith, nowNs, retPtr, retSize, wAscii, wBegin, wByte, wHexByte, wJsonString, wLen, wOverflow, wPosition, wRewind, wTimestamp, wU32, wU64,
} from "./bytes";
import { backoffNs } from "./backoff";
import { randomBytes } from "./random";
import { Root } from "./root";
import { M_AUDIT_DROPPED, M_AUDIT_FLUSH_FAILED, M_AUDIT_SENT, countMetric, updateBuffered } from "./metrics";
import { reasonName } from "./reasons";
import { ruleIdLen, ruleIdPtr } from "../trie";
import { isReady } from "../boot";
import { arenaAlloc, hostLimit, resetHostLimit } from "../memory";

// ---- Binary record ----
const R_LEN: usize = 0; // u32 total length
const R_TIME: usize = 4; // u64 ns since the epoch
const R_LATENCY: usize = 12; // u32 ns
// The matched rule's id and the deciding version are copied in when the record is made: a
// policy sync may install another image before the record is shipped.
const R_RULE_LEN: usize = 16; // u16 bytes of `<policy>/<rule>` (0: no rule)
const R_VER_LEN: usize = 18; // u16 bytes of the policy version
const R_PORT: usize = 20; // u16
const R_REASON: usize = 22; // u8
const R_FLAGS: usize = 23; // u8
const R_SRC_LEN: usize = 24; // u16
const R_DST_LEN: usize = 26; // u16
const R_RAND: usize = 28; // 10 random bytes of the UUID v7 decision id, drawn when the record is made
const R_HEADER: usize = 40; // then the rule id, the version, the source ID, the destination ID

export const F_ALLOW: u8 = 1;
export const F_ENFORCED: u8 = 2;
/** The peer presented no URI SAN (plaintext, or no client certificate). */
export const F_SRC_MISSING: u8 = 4;
/** The peer's URI SAN is not a valid SPIFFE ID. */
export const F_SRC_INVALID: u8 = 8;
/** Our own identity is unknown (no local certificate and none configured). */
export const F_DST_MISSING: u8 = 16;
export const F_DST_INVALID: u8 = 32;

/** Longest ID kept in a record (the SPIFFE limit; the evaluator rejects longer ones anyway). */
const MAX_KEPT_ID: i32 = 2048;

/**
 * Appends one decision. Returns false (and counts a drop) when the buffer is full. The
 * buffer is allocated on the first record (or when a new configuration asks for a bigger one).
 */
export function appendRecord(
  r: Root,
  timeNs: u64,
  latencyNs: u64,
  rule: i32,
  version: usize,
  versionLen: usize,
  port: i32,
  reason: i32,
  flags: u8,
  src: usize,
  srcLen: i32,
  dst: usize,
  dstLen: i32,
): bool {
  if (!r.auditEnabled()) return true;
  if (port < 1 || port > 65535) {
    // The audit trail only holds service requests with a real port; count it as lost.
    countMetric(M_AUDIT_DROPPED, 1);
    return false;
  }
  const sl = srcLen < 0 || srcLen > MAX_KEPT_ID ? 0 : srcLen;
  const dl = dstLen < 0 || dstLen > MAX_KEPT_ID ? 0 : dstLen;
  const rp = rule >= 0 && isReady() ? ruleIdPtr(rule) : 0;
  const rl = rp != 0 ? <usize>ruleIdLen(rule) : 0;
  const need = R_HEADER + rl + versionLen + <usize>sl + <usize>dl;
  if (r.pcap < <usize>r.maxBufferBytes) {
    r.pbuf = heap.alloc(<usize>r.maxBufferBytes);
    r.pcap = <usize>r.maxBufferBytes;
  }
  if (r.pcount >= r.maxRecords || r.pused + need > <usize>r.maxBufferBytes) {
    countMetric(M_AUDIT_DROPPED, 1);
    return false;
  }
  const p = r.pbuf + r.pused;
  store<u32>(p + R_LEN, <u32>need);
  store<u64>(p + R_TIME, timeNs);
  store<u32>(p + R_LATENCY, latencyNs > 0xffffffff ? 0xffffffff : <u32>latencyNs);
  store<u16>(p + R_RULE_LEN, <u16>rl);
  store<u16>(p + R_VER_LEN, <u16>versionLen);
  store<u16>(p + R_PORT, <u16>port);
  store<u8>(p + R_REASON, <u8>reason);
  let f = flags;
  if (srcLen > MAX_KEPT_ID) f |= F_SRC_INVALID;
  if (dstLen > MAX_KEPT_ID) f |= F_DST_INVALID;
  store<u8>(p + R_FLAGS, f);
  store<u16>(p + R_SRC_LEN, <u16>sl);
  store<u16>(p + R_DST_LEN, <u16>dl);
  randomBytes(p + R_RAND, 10);
  let q = p + R_HEADER;
  memory.copy(q, rp, rl);
  q += rl;
  memory.copy(q, version, versionLen);
  q += versionLen;
  if (sl > 0) memory.copy(q, src, <usize>sl);
  if (dl > 0) memory.copy(q + <usize>sl, dst, <usize>dl);
  r.pused += need;
  r.pcount++;
  return true;
}

const UUID_SCRATCH: usize = memory.data(16, 8);

/** UUID v7 of a record: 48-bit Unix milliseconds, version 7, 12 random bits, variant 10, 62 random bits. */
function wUuid7(p: usize): void {
  const ms = load<u64>(p + R_TIME) / 1000000;
  memory.copy(UUID_SCRATCH + 6, p + R_RAND, 10);
  for (let i = 0; i < 6; i++) store<u8>(UUID_SCRATCH + <usize>i, <u8>(ms >> (<u64>(40 - 8 * i))));
  store<u8>(UUID_SCRATCH + 6, 0x70 | (load<u8>(UUID_SCRATCH + 6) & 0x0f));
  store<u8>(UUID_SCRATCH + 8, 0x80 | (load<u8>(UUID_SCRATCH + 8) & 0x3f));
  for (let i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) wByte(0x2d);
    wHexByte(<u32>load<u8>(UUID_SCRATCH + <usize>i));
  }
}

/** Where the source ID of a record starts (after the rule id and the version). */
// @ts-ignore: decorator
@inline function srcAt(p: usize): usize {
  return p + R_HEADER + <usize>load<u16>(p + R_RULE_LEN) + <usize>load<u16>(p + R_VER_LEN);
}

/** Reserved identities for records whose IDs cannot be shown (".invalid" is never a real trust domain). */
function wSource(p: usize, f: u8): void {
  const sl = <usize>load<u16>(p + R_SRC_LEN);
  if (f & F_SRC_MISSING) wAscii("\"spiffe://zt.invalid/unauthenticated\"");
  else if (f & F_SRC_INVALID || sl == 0) wAscii("\"spiffe://zt.invalid/invalid-peer-id\"");
  else wJsonString(srcAt(p), sl);
}

function wDestination(p: usize, f: u8): void {
  const sl = <usize>load<u16>(p + R_SRC_LEN);
  const dl = <usize>load<u16>(p + R_DST_LEN);
  if (f & F_DST_MISSING) wAscii("\"spiffe://zt.invalid/unknown-local-identity\"");
  else if (f & F_DST_INVALID || dl == 0) wAscii("\"spiffe://zt.invalid/invalid-local-id\"");
  else wJsonString(srcAt(p) + sl, dl);
}

/** One AuditRecord (host/audit/record.ts) as JSON. */
function wRecord(r: Root, p: usize): void {
  const f = load<u8>(p + R_FLAGS);
  const t = load<u64>(p + R_TIME);
  const rl = <usize>load<u16>(p + R_RULE_LEN);
  wAscii("{\"timestamp\":\"");
  wTimestamp(t);
  wAscii(f & F_ALLOW ? "\",\"decision\":\"ALLOW\",\"source\":{\"spiffe_id\":" : "\",\"decision\":\"DENY\",\"source\":{\"spiffe_id\":");
  wSource(p, f);
  wAscii(",\"pod\":null,\"node\":null},\"destination\":{\"spiffe_id\":");
  wDestination(p, f);
  wAscii(",\"port\":");
  wU32(<u32>load<u16>(p + R_PORT));
  wAscii("},\"operator\":null,\"target\":null,\"policy_matched\":");
  if (rl > 0) wJsonString(p + R_HEADER, rl);
  else wAscii("null");
  wAscii(",\"latency_us\":");
  wU64(<u64>load<u32>(p + R_LATENCY) / 1000);
  wAscii(",\"decision_id\":\"");
  wUuid7(p);
  wAscii(f & F_ENFORCED ? "\",\"enforced\":true,\"reason\":\"" : "\",\"enforced\":false,\"reason\":\"");
  wAscii(reasonName(<i32>load<u8>(p + R_REASON)));
  wAscii("\",\"policy_version\":");
  wJsonString(p + R_HEADER + rl, <usize>load<u16>(p + R_VER_LEN));
  wAscii(",\"origin\":");
  wJsonString(r.originPtr, <usize>r.originLen);
  wAscii(",\"caller\":null}");
}

// ---- Header pairs (the ingest and sync requests, the 403 reply) ----
// Each pair is noted as (pointer, length) of its key and value, and written out once by
// serializePairs. A key or value given as a literal is noted by the literal itself (UTF-16
// static data) and converted to ASCII straight into the output: no intermediate copy.
const MAX_PAIRS: i32 = 6;
const PAIR_SIZE: usize = 20;
const PAIRS: usize = memory.data(MAX_PAIRS * <i32>PAIR_SIZE, 8);
const KEY_LITERAL: u32 = 1;
const VALUE_LITERAL: u32 = 2;
let pairCount: i32 = 0;

function pair(kp: usize, kl: usize, vp: usize, vl: usize, literals: u32): void {
  const e = PAIRS + <usize>pairCount * PAIR_SIZE;
  store<u32>(e, <u32>kp);
  store<u32>(e + 4, <u32>kl);
  store<u32>(e + 8, <u32>vp);
  store<u32>(e + 12, <u32>vl);
  store<u32>(e + 16, literals);
  pairCount++;
}

/** Copies a noted key or value to q: ASCII from a literal, else the bytes as they are. */
// @ts-ignore: decorator
@inline function pairPart(q: usize, p: usize, n: usize, literal: bool): void {
  if (literal) asciiCopy(q, changetype<string>(p));
  else memory.copy(q, p, n);
}

/** Serialises the collected pairs (proxy-wasm pairs encoding) into the arena; size in RET_SIZE. */
export function serializePairs(): usize {
  let size: usize = 4;
  for (let i = 0; i < pairCount; i++) {
    const e = PAIRS + <usize>i * PAIR_SIZE;
    size += 8 + <usize>load<u32>(e + 4) + 1 + <usize>load<u32>(e + 12) + 1;
  }
  const out = arenaAlloc(size);
  store<u32>(out, <u32>pairCount);
  let q = out + 4;
  for (let i = 0; i < pairCount; i++) {
    const e = PAIRS + <usize>i * PAIR_SIZE;
    store<u32>(q, load<u32>(e + 4));
    store<u32>(q + 4, load<u32>(e + 12));
    q += 8;
  }
  for (let i = 0; i < pairCount; i++) {
    const e = PAIRS + <usize>i * PAIR_SIZE;
    const kl = <usize>load<u32>(e + 4);
    const vl = <usize>load<u32>(e + 12);
    const literals = load<u32>(e + 16);
    pairPart(q, <usize>load<u32>(e), kl, (literals & KEY_LITERAL) != 0);
    q += kl;
    store<u8>(q++, 0);
    pairPart(q, <usize>load<u32>(e + 8), vl, (literals & VALUE_LITERAL) != 0);
    q += vl;
    store<u8>(q++, 0);
  }
  store<u32>(RET_SIZE, <u32>size);
  pairCount = 0;
  return out;
}

export function pairsReset(): void {
  pairCount = 0;
}

/** A pair of ASCII literals (static data: noted, not copied, until serializePairs). */
export function pairLit(k: string, v: string): void {
  pair(changetype<usize>(k), <usize>k.length, changetype<usize>(v), <usize>v.length, KEY_LITERAL | VALUE_LITERAL);
}

/** An ASCII literal key and a value of bytes, which must stay put until serializePairs. */
export function pairBytes(k: string, vp: usize, vl: usize): void {
  pair(changetype<usize>(k), <usize>k.length, vp, vl, KEY_LITERAL);
}

const TOKEN_SLOT: usize = memory.data(4, 4);

/** After a failed attempt: the next one waits (backoff.ts). */
function scheduleRetry(r: Root): void {
  r.failures++;
  r.retryAtNs = nowNs() + backoffNs(r.failures, r.flushMs, r.retryMaxMs);
}

/** True while a retry is waiting out its backoff. */
export function backingOff(r: Root): bool {
  return r.failures > 0 && nowNs() < r.retryAtNs;
}

/** Ships the oldest buffered records (one batch in flight per root), unless backing off. */
export function flush(r: Root): void {
  updateBuffered();
  if (!r.auditEnabled() || r.inflightToken != 0 || r.pcount == 0) return;
  if (backingOff(r)) return;
  if (r.bodyCap < <usize>r.maxBatchBytes) {
    r.body = heap.alloc(<usize>r.maxBatchBytes);
    r.bodyCap = <usize>r.maxBatchBytes;
  }
  wBegin(r.body, <usize>r.maxBatchBytes - 2); // room for the closing "]}"
  wAscii("{\"records\":[");
  let n: u32 = 0;
  let p = r.pbuf;
  while (n < r.pcount && n < r.maxBatchRecords) {
    const mark = wPosition();
    if (n > 0) wByte(0x2c);
    wRecord(r, p);
    if (wOverflow()) {
      wRewind(mark);
      break;
    }
    n++;
    p += <usize>load<u32>(p + R_LEN);
  }
  if (n == 0) {
    // Cannot happen with max_batch_bytes >= 64 KiB; never let one record wedge the buffer.
    dropFront(r, 1, <usize>load<u32>(r.pbuf + R_LEN));
    countMetric(M_AUDIT_DROPPED, 1);
    return;
  }
  wBegin(r.body + wLen(), 2);
  wAscii("]}");
  const bodyLen = <usize>(wPosition() - r.body);

  pairsReset();
  pairLit(":method", "POST");
  pairBytes(":path", r.pathPtr, <usize>r.pathLen);
  pairBytes(":authority", r.authorityPtr, <usize>r.authorityLen);
  pairLit("content-type", "application/json");
  if (r.tokenLen > 0) {
    const v = arenaAlloc(7 + <usize>r.tokenLen);
    asciiCopy(v, "Bearer ");
    memory.copy(v + 7, r.tokenPtr, <usize>r.tokenLen);
    pairBytes("authorization", v, 7 + <usize>r.tokenLen);
  }
  const hdrs = serializePairs();
  const hdrsLen = <usize>load<u32>(RET_SIZE);
  store<u32>(TOKEN_SLOT, 0);
  const rc = proxy_http_call(r.clusterPtr, <usize>r.clusterLen, hdrs, hdrsLen, r.body, bodyLen, 0, 0, r.timeoutMs, TOKEN_SLOT);
  if (rc != OK) {
    countMetric(M_AUDIT_FLUSH_FAILED, 1);
    logNumber(LOG_WARN, "zt: audit flush could not start (proxy_http_call status) ", <u64>rc);
    scheduleRetry(r);
    return;
  }
  r.inflightToken = load<u32>(TOKEN_SLOT);
  r.inflightCount = n;
  r.inflightBytes = p - r.pbuf;
}

function dropFront(r: Root, n: u32, bytes: usize): void {
  memory.copy(r.pbuf, r.pbuf + bytes, r.pused - bytes);
  r.pused -= bytes;
  r.pcount -= n;
}

/** Parses ":status" of the http call response; 0 when absent (the call failed) or not a status. */
export function responseStatus(): u32 {
  // A status is three digits: anything longer is refused by malloc, never copied.
  if (responseHeader(":status", 16) != PROP_FOUND) return 0;
  const p = retPtr();
  const n = retSize();
  let v: u32 = 0;
  for (let i = 0; i < n; i++) {
    const c = <u32>load<u8>(p + <usize>i);
    if (c < 0x30 || c > 0x39 || v > 999) return 0;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

let delivered: bool = false;

/** True when the last ingest response handled was a success (2xx). */
export function lastIngestDelivered(): bool {
  return delivered;
}

/** Handles the ingest response for the batch in flight. Returns true when it was ours. */
export function onIngestResponse(r: Root, token: u32, bodySize: u32): bool {
  if (r.inflightToken == 0 || token != r.inflightToken) return false;
  delivered = false;
  const n = r.inflightCount;
  const bytes = r.inflightBytes;
  r.inflightToken = 0;
  r.inflightCount = 0;
  r.inflightBytes = 0;
  const status = responseStatus();
  if (status >= 200 && status < 300) {
    delivered = true;
    r.failures = 0;
    r.retryAtNs = 0;
    dropFront(r, n, bytes);
    countMetric(M_AUDIT_SENT, <u64>n);
  } else if (status == 0 || status >= 500 || status == 401 || status == 403 || status == 408 || status == 429) {
    countMetric(M_AUDIT_FLUSH_FAILED, 1);
    logNumber(LOG_WARN, "zt: audit ingest failed, will retry after a backoff; HTTP status (0 = no response) ", <u64>status);
    scheduleRetry(r);
  } else {
    dropFront(r, n, bytes);
    countMetric(M_AUDIT_DROPPED, <u64>n);
    logNumber(LOG_ERROR, "zt: audit ingest rejected a batch; records dropped, HTTP status ", <u64>status);
    if (bodySize > 0) {
      store<u32>(RET_PTR, 0);
      store<u32>(RET_SIZE, 0);
      hostLimit(512);
      const rc = proxy_get_buffer_bytes(BUFFER_HTTP_CALL_RESPONSE_BODY, 0, bodySize < 512 ? bodySize : 512, RET_PTR, RET_SIZE);
      resetHostLimit();
      if (rc == OK) {
        logWith(LOG_ERROR, "zt: ingest response: ", retPtr(), <usize>retSize());
      }
    }
  }
  updateBuffered();
  return true;
}

/** Drops everything buffered (root going away without a reachable engine). */
export function discardAll(r: Root): void {
  if (r.pcount > 0) countMetric(M_AUDIT_DROPPED, <u64>r.pcount);
  r.pused = 0;
  r.pcount = 0;
  updateBuffered();
}

