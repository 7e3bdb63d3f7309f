// Policy sync (docs/envoy.md, "How a policy update reaches the sidecars"): every root with
// `sync_cluster` keeps one long poll in flight to the engine's GET /v1/policy-image through
// proxy_http_call, with If-None-Match = the version this VM decides with. 304: nothing new,
// poll again. 200: a new image, verified before anything changes (its header, its tables,
// and its sha256 computed here against the x-zt-image-sha256 the engine announced; the
// mTLS cluster to the engine is what makes that announcement authentic), then installed
// in the callback that received it, so every request is decided wholly by the old image or
// wholly by the new one. A refused image is logged and counted and the old one keeps
// deciding; its version joins If-None-Match for a while (backing off) so the engine holds
// the next poll instead of sending it again at once. No answer, 5xx, 401...: keep the
// image (fail static) and retry after a backoff. Each VM (Envoy runs one per worker
// thread) syncs on its own; the image and its version are per VM (assembly/image.ts).
import {
  BUFFER_HTTP_CALL_RESPONSE_BODY, LOG_ERROR, LOG_INFO, LOG_WARN, OK, proxy_get_buffer_bytes, proxy_http_call, proxy_log, proxy_set_tick_period_milliseconds,
} from "./host";
import {
  PROP_FOUND, PROP_REFUSED, RET_PTR, RET_SIZE, asciiCopy, logNumber, logWith, nowNs, responseHeader, retPtr, retSize, wAscii, wBegin, wBytes, wLen, wU32,
} from "./bytes";
import { pairBytes, pairLit, pairsReset, responseStatus, serializePairs } from "./audit";
import { backoffNs } from "./backoff";
import { M_SYNC_FAILURES, M_SYNC_IMAGE_AGE, M_SYNC_REFUSED, M_SYNC_SWAPS, countMetric, setGauge } from "./metrics";
import { Root } from "./root";
import { IMAGE_OK, checkImage, imageProblem } from "../image-check";
import { MAX_VERSION_BYTES, imageVersionLen, imageVersionPtr, install, stagingArea } from "../image";
import { arenaAlloc, hostTarget, resetHostLimit } from "../memory";
import { sha256 } from "../sha256";

/** Ticks drive the first poll and the retries; at most this far apart when sync is on. */
export const SYNC_TICK_MS: u32 = 1000;
/** Until the first poll has left: a VM without an image denies everything until it syncs. */
export const SYNC_START_TICK_MS: u32 = 20;
/** The http call's timeout: the long poll's wait plus this. */
const CALL_MARGIN_MS: u32 = 15000;

// ---- per VM ----
/** When the engine last said this VM's image is the active one (200 installed or equal, 304); 0: never. */
let confirmedNs: u64 = 0;
/** When sync was first configured in this VM (the image's age counts from here until a confirmation). */
let sinceNs: u64 = 0;
const REFUSED: usize = memory.data(<i32>MAX_VERSION_BYTES, 8);
let refusedLen: usize = 0;
let refusals: u32 = 0;
let refusedUntilNs: u64 = 0;
const WANT: usize = memory.data(32, 8);
const GOT: usize = memory.data(32, 8);
const TOKEN_SLOT: usize = memory.data(4, 4);

/** Called by configure for a root with sync settings. */
export function syncConfigured(): void {
  if (sinceNs == 0) sinceNs = nowNs();
}

const UNKNOWN: usize = memory.data<u8>([0x75, 0x6e, 0x6b, 0x6e, 0x6f, 0x77, 0x6e]); // "unknown", the configured default
const IDENTITY: usize = memory.data<u8>([0x69, 0x64, 0x65, 0x6e, 0x74, 0x69, 0x74, 0x79]); // "identity"

/** The version this VM decides with: the installed image's, else the one configured with the module. */
function knownPtr(r: Root): usize {
  return imageVersionLen() > 0 ? imageVersionPtr() : r.versionPtr;
}

/** Its length; 0 when unknown (nothing installed, nothing but the default configured). */
function knownLen(r: Root): usize {
  if (imageVersionLen() > 0) return imageVersionLen();
  const unknown = r.versionLen == 7 && memory.compare(r.versionPtr, UNKNOWN, 7) == 0;
  return unknown ? 0 : <usize>r.versionLen;
}

function updateAge(now: u64): void {
  const from = confirmedNs != 0 ? confirmedNs : sinceNs;
  if (from != 0) setGauge(M_SYNC_IMAGE_AGE, now > from ? (now - from) / 1000000000 : 0);
}

/** The root's tick: start a poll when none is in flight and no backoff is running. */
export function syncTick(r: Root): void {
  const now = nowNs();
  updateAge(now);
  if (!r.syncEnabled() || r.doneRequested || r.syncToken != 0) return;
  if (r.syncFailures > 0 && now < r.syncRetryAtNs) return;
  poll(r, now);
}

function poll(r: Root, now: u64): void {
  const vp = knownLen(r);
  const versionPtr = knownPtr(r);
  // path?wait=<seconds>
  const cap = <usize>r.syncPathLen + 24;
  const path = arenaAlloc(cap);
  wBegin(path, cap);
  wBytes(r.syncPathPtr, <usize>r.syncPathLen);
  let hasQuery = false;
  for (let i = 0; i < r.syncPathLen; i++) if (load<u8>(r.syncPathPtr + <usize>i) == 0x3f) hasQuery = true;
  wAscii(hasQuery ? "&wait=" : "?wait=");
  wU32(r.syncWaitMs / 1000);
  const pathLen = wLen();

  pairsReset();
  pairLit(":method", "GET");
  pairBytes(":path", path, pathLen);
  pairBytes(":authority", r.syncAuthorityPtr, <usize>r.syncAuthorityLen);
  if (r.syncTokenLen > 0) {
    const v = arenaAlloc(7 + <usize>r.syncTokenLen);
    asciiCopy(v, "Bearer ");
    memory.copy(v + 7, r.syncTokenPtr, <usize>r.syncTokenLen);
    pairBytes("authorization", v, 7 + <usize>r.syncTokenLen);
  }
  // If-None-Match: the version we decide with and, for a while, the one we refused.
  const holdRefused = refusedLen > 0 && now < refusedUntilNs;
  if (vp > 0 || holdRefused) {
    const icap = vp + refusedLen + 8;
    const inm = arenaAlloc(icap);
    wBegin(inm, icap);
    if (vp > 0) {
      wAscii("\"");
      wBytes(versionPtr, vp);
      wAscii("\"");
    }
    if (holdRefused) {
      if (vp > 0) wAscii(", ");
      wAscii("\"");
      wBytes(REFUSED, refusedLen);
      wAscii("\"");
    }
    pairBytes("if-none-match", inm, wLen());
  }
  const hdrs = serializePairs();
  const hdrsLen = <usize>load<u32>(RET_SIZE);
  store<u32>(TOKEN_SLOT, 0);
  const rc = proxy_http_call(r.syncClusterPtr, <usize>r.syncClusterLen, hdrs, hdrsLen, 0, 0, 0, 0, r.syncWaitMs + CALL_MARGIN_MS, TOKEN_SLOT);
  if (r.fastStart) {
    r.fastStart = false;
    proxy_set_tick_period_milliseconds(r.tickMs);
  }
  if (rc != OK) {
    failed(r, now, "zt: policy poll could not start (proxy_http_call status) ", <u64>rc);
    return;
  }
  r.syncToken = load<u32>(TOKEN_SLOT);
}

function failed(r: Root, now: u64, msg: string, v: u64): void {
  r.syncFailures++;
  r.syncRetryAtNs = now + backoffNs(r.syncFailures, r.syncRetryMs, r.syncRetryMaxMs);
  countMetric(M_SYNC_FAILURES, 1);
  logNumber(LOG_WARN, msg, v);
}

/** Handles the answer to the root's poll; false when `token` is not its poll. */
export function onSyncResponse(r: Root, token: u32, bodySize: u32): bool {
  if (r.syncToken == 0 || token != r.syncToken) return false;
  r.syncToken = 0;
  const now = nowNs();
  const status = responseStatus();
  if (status == 304) {
    confirmedNs = now;
    r.syncFailures = 0;
  } else if (status == 200) {
    r.syncFailures = 0;
    received(r, now, bodySize);
  } else {
    failed(r, now, "zt: policy poll failed; the current image keeps deciding. HTTP status (0 = no answer) ", <u64>status);
  }
  updateAge(now);
  // Keep one poll in flight: the next one leaves now (after a failure, on a tick after its backoff).
  if (r.syncFailures == 0 && !r.doneRequested) poll(r, now);
  return true;
}

/** True when [p, p+n) is printable ASCII without spaces or quotes (a version fit for a header). */
function versionChars(p: usize, n: usize): bool {
  if (n == 0 || n > MAX_VERSION_BYTES) return false;
  for (let i: usize = 0; i < n; i++) {
    const c = load<u8>(p + i);
    if (c < 0x21 || c > 0x7e || c == 0x22) return false;
  }
  return true;
}

function hexNibble(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  return -1;
}

/** 64 lowercase hex digits at p into WANT. */
function parseDigest(p: usize): bool {
  for (let i: usize = 0; i < 32; i++) {
    const hi = hexNibble(<u32>load<u8>(p + 2 * i));
    const lo = hexNibble(<u32>load<u8>(p + 2 * i + 1));
    if (hi < 0 || lo < 0) return false;
    store<u8>(WANT + i, <u8>((hi << 4) | lo));
  }
  return true;
}

/** Logs and counts a refused image; its version is held back from the next polls for a while. */
function refuse(now: u64, vp: usize, vl: usize, why: string): void {
  countMetric(M_SYNC_REFUSED, 1);
  if (versionChars(vp, vl)) {
    memory.copy(REFUSED, vp, vl);
    refusedLen = vl;
  }
  refusals++;
  refusedUntilNs = now + backoffNs(refusals, 1000, 600000);
  logRefusal(why, vp, vl);
}

/** "zt: policy image refused: <why>; the current image keeps deciding (version <v>)". */
function logRefusal(why: string, vp: usize, vl: usize): void {
  const cap: usize = 160 + <usize>why.length + vl;
  const buf = arenaAlloc(cap);
  wBegin(buf, cap);
  wAscii("zt: policy image refused: ");
  wAscii(why);
  wAscii("; the current image keeps deciding (version ");
  if (versionChars(vp, vl)) wBytes(vp, vl);
  else wAscii("unknown");
  wAscii(")");
  proxy_log(LOG_ERROR, buf, wLen());
}

/** A 200: the version, the announced digest, then the body into the staging slot, checked. */
function received(r: Root, now: u64, bodySize: u32): void {
  if (responseHeader("x-zt-policy-version", MAX_VERSION_BYTES) != PROP_FOUND || !versionChars(retPtr(), <usize>retSize())) {
    refuse(now, 0, 0, "no valid x-zt-policy-version header");
    return;
  }
  const vp = retPtr();
  const vl = <usize>retSize();
  if (knownLen(r) == vl && memory.compare(knownPtr(r), vp, vl) == 0) {
    confirmedNs = now; // the image we have is the engine's
    return;
  }
  if (responseHeader("x-zt-image-sha256", 64) != PROP_FOUND || retSize() != 64 || !parseDigest(retPtr())) {
    refuse(now, vp, vl, "no valid x-zt-image-sha256 header");
    return;
  }
  // Only identity: the poll asks for no encoding, and the module carries no decompressor.
  const ce = responseHeader("content-encoding", 32);
  if (ce == PROP_REFUSED || (ce == PROP_FOUND && (retSize() != 8 || memory.compare(retPtr(), IDENTITY, 8) != 0))) {
    refuse(now, vp, vl, "compressed (content-encoding other than identity)");
    return;
  }
  if (bodySize > r.syncMaxImageBytes) {
    refuse(now, vp, vl, "larger than sync_max_image_bytes");
    return;
  }
  // The body goes straight into the slot evaluations do not read.
  const at = stagingArea(<usize>bodySize);
  store<u32>(RET_PTR, 0);
  store<u32>(RET_SIZE, 0);
  hostTarget(at, <usize>bodySize);
  const rc = proxy_get_buffer_bytes(BUFFER_HTTP_CALL_RESPONSE_BODY, 0, bodySize, RET_PTR, RET_SIZE);
  resetHostLimit();
  if (rc != OK || retPtr() != at || <u32>retSize() != bodySize) {
    refuse(now, vp, vl, "the body could not be read whole");
    return;
  }
  const problem = checkImage(at, <usize>bodySize);
  if (problem != IMAGE_OK) {
    refuse(now, vp, vl, imageProblem(problem));
    return;
  }
  sha256(at, <usize>bodySize, GOT);
  if (memory.compare(GOT, WANT, 32) != 0) {
    refuse(now, vp, vl, "its sha256 differs from the digest the engine announced");
    return;
  }
  install(at, vp, vl);
  refusedLen = 0;
  refusals = 0;
  confirmedNs = now;
  countMetric(M_SYNC_SWAPS, 1);
  logWith(LOG_INFO, "zt: policy image installed: ", vp, vl);
}
