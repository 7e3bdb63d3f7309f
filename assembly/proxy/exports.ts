// The proxy-wasm ABI 0.2.1 entry points: what Envoy calls. Exported through assembly/index.ts.
//
// Memory: the host writes values it returns (properties, buffers, header values) through
// `malloc`, which hands out arena memory. The arena is reset when a top-level callback
// starts. That is safe because the host only allocates inside a host call the module makes,
// the module reads those values before the callback returns, and nothing kept across
// callbacks lives in the arena (configuration strings are copied into the root's own area,
// decision records into the root's buffer). Envoy defers its re-entrant work (local
// replies, closes, callout failures) until the VM call returns; should a host still
// re-enter, the depth counter keeps the outer callback's arena intact.
import { MAX_HOST_VALUE, arenaAlloc, arenaReset, hostAlloc, hostLimit, resetHostLimit } from "../memory";
import { isReady } from "../boot";
import {
  BUFFER_PLUGIN_CONFIGURATION, LOG_CRITICAL, LOG_ERROR, OK, STREAM_DOWNSTREAM,
  proxy_close_stream, proxy_get_buffer_bytes, proxy_send_local_response, proxy_set_tick_period_milliseconds,
} from "./host";
import { RET_PTR, RET_SIZE, asciiCopy, logAscii, logNumber, nowNs, retPtr, retSize, wAscii, wBegin, wJsonString, wLen } from "./bytes";
import { parseConfig } from "./config";
import { decide, lastBlocked, lastReason, lastRule } from "./decide";
import { flush, lastIngestDelivered, onIngestResponse, pairBytes, pairLit, pairsReset, serializePairs } from "./audit";
import { drainStep, evictDraining, startDrain } from "./drain";
import { SYNC_START_TICK_MS, SYNC_TICK_MS, onSyncResponse, syncConfigured, syncTick } from "./sync";
import { defineMetrics } from "./metrics";
import { reasonName } from "./reasons";
import { NO_ROOT, Root, createRoot, findRoot, releaseRoot, rootAt } from "./root";
import {
  KIND_HTTP, KIND_TCP, L4_ALLOWED, L4_DENIED, addStream, findStream, removeStream, setStreamKind,
  setStreamState, streamRoot, streamState,
} from "./streams";
import { ruleIdLen, ruleIdPtr } from "../trie";

const CONTINUE: u32 = 0;
const STOP: u32 = 1;

let depth: i32 = 0;

// @ts-ignore: decorator
@inline function enter(): void {
  if (depth == 0) arenaReset();
  depth++;
}

// @ts-ignore: decorator
@inline function leave(): void {
  depth--;
}

/** Marks the module as proxy-wasm ABI 0.2.1 (Envoy looks for this export's name). */
export function proxy_abi_version_0_2_1(): void {}

/**
 * The host's allocator for values it returns (see the memory note above): 0 for a value
 * larger than the current bound (memory.ts), which makes the host fail that call without
 * copying anything.
 */
export function malloc(size: usize): usize {
  return hostAlloc(size);
}

export function proxy_on_memory_allocate(size: usize): usize {
  return hostAlloc(size);
}

export function proxy_on_context_create(id: u32, parent: u32): void {
  enter();
  if (parent == 0) newRoot(id);
  else addStream(id, findRoot(parent));
  leave();
}

/** A root for a new plugin configuration; a full table first makes a draining root give up. */
function newRoot(id: u32): u32 {
  let slot = createRoot(id);
  if (slot == NO_ROOT && evictDraining(id)) slot = createRoot(id);
  if (slot == NO_ROOT) logAscii(LOG_ERROR, "zt: too many plugin configurations in one VM");
  return slot;
}

export function proxy_on_vm_start(_root: u32, _vmConfigSize: u32): u32 {
  return 1;
}

/** Reads and applies the plugin configuration; false makes Envoy reject the filter config. */
export function proxy_on_configure(root: u32, size: u32): u32 {
  enter();
  const ok = configure(root, size);
  leave();
  return ok ? 1 : 0;
}

function configure(root: u32, size: u32): bool {
  let slot = findRoot(root);
  if (slot == NO_ROOT) slot = newRoot(root);
  if (slot == NO_ROOT) return false;
  defineMetrics();
  const r = rootAt(slot);
  let ptr: usize = 0;
  let len: usize = 0;
  if (<usize>size > MAX_HOST_VALUE) {
    logNumber(LOG_ERROR, "zt: the plugin configuration is larger than the limit of this many bytes: ", <u64>MAX_HOST_VALUE);
    return false;
  }
  if (size > 0) {
    store<u32>(RET_PTR, 0);
    store<u32>(RET_SIZE, 0);
    hostLimit(<usize>size);
    const rc = proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, size, RET_PTR, RET_SIZE);
    resetHostLimit();
    if (rc != OK) {
      logAscii(LOG_ERROR, "zt: cannot read the plugin configuration");
      return false;
    }
    ptr = retPtr();
    len = <usize>retSize();
  }
  if (!parseConfig(r, ptr, len)) return false;
  if (!isReady()) logAscii(LOG_CRITICAL, "zt: the module has no valid policy image: every request is denied (internal_error)");
  // Ticks ship the audit buffer (every flush_interval_ms) and start policy polls and their
  // retries (at least every SYNC_TICK_MS when sync is on; then flushes keep their own pace).
  let tick: u32 = r.auditEnabled() ? r.flushMs : 0;
  if (r.syncEnabled()) {
    if (tick == 0 || tick > SYNC_TICK_MS) tick = SYNC_TICK_MS;
    syncConfigured();
  }
  r.tickMs = tick;
  r.nextFlushNs = nowNs() + <u64>r.flushMs * 1000000;
  // A VM may start with no image (the bare filter module): its first poll leaves at once.
  r.fastStart = r.syncEnabled();
  if (tick > 0) proxy_set_tick_period_milliseconds(r.fastStart ? SYNC_START_TICK_MS : tick);
  r.configured = true;
  return true;
}

export function proxy_on_tick(root: u32): void {
  enter();
  const slot = findRoot(root);
  if (slot != NO_ROOT) {
    const r = rootAt(slot);
    if (r.doneRequested) drainStep(r, slot);
    else {
      if (r.auditEnabled()) flushDue(r);
      if (r.syncEnabled()) syncTick(r);
    }
  }
  leave();
}

/** Flushes on the flush interval even when sync makes the ticks come faster. */
function flushDue(r: Root): void {
  if (r.tickMs < r.flushMs) {
    const now = nowNs();
    if (now < r.nextFlushNs) return;
    r.nextFlushNs = now + <u64>r.flushMs * 1000000;
  }
  flush(r);
}

// ---- HTTP filter ----

export function proxy_on_request_headers(id: u32, _headers: u32, _endOfStream: u32): u32 {
  enter();
  const s = findStream(id);
  if (s != 0) setStreamKind(s, KIND_HTTP);
  decide(streamRoot(s));
  let action = CONTINUE;
  if (lastBlocked()) {
    sendDenied(lastReason(), lastRule());
    action = STOP;
  }
  leave();
  return action;
}

/** 403 with the reason and the matched rule in headers and a small JSON body. */
function sendDenied(reason: i32, rule: i32): void {
  const hasRule = rule >= 0 && isReady() && ruleIdLen(rule) > 0;
  const rp = hasRule ? ruleIdPtr(rule) : 0;
  const rl = hasRule ? <usize>ruleIdLen(rule) : 0;
  const cap: usize = 160 + rl * 6;
  const body = arenaAlloc(cap);
  wBegin(body, cap);
  wAscii("{\"error\":\"forbidden\",\"decision\":\"DENY\",\"reason\":\"");
  const name = reasonName(reason);
  wAscii(name);
  wAscii("\",\"policy_matched\":");
  if (hasRule) wJsonString(rp, rl);
  else wAscii("null");
  wAscii("}");
  const bodyLen = wLen();
  pairsReset();
  pairLit("content-type", "application/json");
  pairLit("x-zt-decision", "DENY");
  pairLit("x-zt-reason", name);
  if (hasRule) pairBytes("x-zt-rule", rp, rl);
  const hdrs = serializePairs();
  const hdrsLen = <usize>load<u32>(RET_SIZE);
  const details = arenaAlloc(9);
  asciiCopy(details, "zt_denied");
  // grpc_status -1: none; Envoy maps 403 to PERMISSION_DENIED for gRPC callers itself.
  proxy_send_local_response(403, details, 9, body, bodyLen, hdrs, hdrsLen, -1);
}

// ---- Network (L4) filter ----

export function proxy_on_new_connection(id: u32): u32 {
  enter();
  const s = findStream(id);
  if (s != 0) setStreamKind(s, KIND_TCP);
  leave();
  // The peer certificate is known only after the TLS handshake: decide on the first data.
  return CONTINUE;
}

export function proxy_on_downstream_data(id: u32, _size: u32, _endOfStream: u32): u32 {
  enter();
  const action = downstream(id);
  leave();
  return action;
}

function downstream(id: u32): u32 {
  const s = findStream(id);
  if (s == 0) {
    decide(NO_ROOT);
    proxy_close_stream(STREAM_DOWNSTREAM);
    return STOP;
  }
  const state = streamState(s);
  if (state == L4_ALLOWED) return CONTINUE;
  if (state == L4_DENIED) return STOP;
  decide(streamRoot(s));
  if (lastBlocked()) {
    setStreamState(s, L4_DENIED);
    proxy_close_stream(STREAM_DOWNSTREAM);
    return STOP;
  }
  setStreamState(s, L4_ALLOWED);
  return CONTINUE;
}

export function proxy_on_upstream_data(id: u32, _size: u32, _endOfStream: u32): u32 {
  const s = findStream(id);
  // Upstream bytes before the first client bytes (server-first protocols) pass: the client
  // can send nothing to the upstream before its connection has been decided.
  return s != 0 && streamState(s) == L4_DENIED ? STOP : CONTINUE;
}

// ---- Callouts ----

export function proxy_on_http_call_response(root: u32, token: u32, _headers: u32, bodySize: u32, _trailers: u32): void {
  enter();
  const slot = findRoot(root);
  if (slot != NO_ROOT) {
    const r = rootAt(slot);
    if (onSyncResponse(r, token, bodySize)) {
      leave();
      return;
    }
    const ours = onIngestResponse(r, token, bodySize);
    // More waiting after a delivered batch: send the next one now rather than on the next
    // tick, so shipping keeps up with traffic (one batch per round trip, not per tick).
    // After a failure the backoff decides when (flush checks it).
    if (ours && r.doneRequested) drainStep(r, slot);
    else if (ours && r.inflightToken == 0 && r.pcount > 0 && lastIngestDelivered()) flush(r);
  }
  leave();
}

// ---- Context end ----

/** Streams are done at once; a root ships what it still holds first (drain.ts). */
export function proxy_on_done(id: u32): u32 {
  enter();
  let done: u32 = 1;
  const slot = findRoot(id);
  if (slot != NO_ROOT) {
    const r = rootAt(slot);
    if (!r.doneRequested && !startDrain(r)) done = 0;
  }
  leave();
  return done;
}

export function proxy_on_delete(id: u32): void {
  enter();
  const slot = findRoot(id);
  if (slot != NO_ROOT) releaseRoot(slot);
  else removeStream(id);
  leave();
}
