// The filter's decision, shared by the HTTP and the network filter: who is calling (the
// peer certificate's URI SAN), who we are (configured identity or our own certificate's
// URI SAN), which port, then the same evaluator the engine runs, the mode that applies
// (the policy's per-destination rollout when it has one, else the configured mode), an
// audit record and a metric. Fail closed: no root, no own identity or a missing policy
// image is a deny (internal_error) unless observe mode applies.
import { evalService } from "../eval";
import { PROP_FOUND, PROP_REFUSED, getIntProperty, getProperty, nowNs, retPtr, retSize } from "./bytes";
import { appendRecord, F_ALLOW, F_DST_INVALID, F_DST_MISSING, F_ENFORCED, F_SRC_INVALID, F_SRC_MISSING } from "./audit";
import { isSpiffeId } from "./config";
import { M_ALLOW, M_DENY, M_NO_PEER_ID, M_OBSERVE_DENY, countMetric } from "./metrics";
import { REASON_ALLOWED_BY_RULE, REASON_INTERNAL_ERROR, REASON_SOURCE_UNDECLARED } from "./reasons";
import { MODE_ENFORCE, NO_ROOT, rootAt } from "./root";
import { MAX_ID_BYTES } from "../layout";
import { imageVersionLen, imageVersionPtr } from "../image";

// Outcome of the last decide() (globals: no allocation per request).
let block: bool = true;
let reason: i32 = REASON_INTERNAL_ERROR;
let rule: i32 = -1;

export function lastBlocked(): bool {
  return block;
}

export function lastReason(): i32 {
  return reason;
}

export function lastRule(): i32 {
  return rule;
}

// The property paths a decision reads, as the host takes them (bytes, segments joined by
// NUL): static data, so a request copies no path. Each array spells the text beside it.
// "connection\0uri_san_peer_certificate"
const PEER_SAN: usize = memory.data<u8>([0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x0, 0x75, 0x72, 0x69, 0x5f, 0x73, 0x61, 0x6e, 0x5f, 0x70, 0x65, 0x65, 0x72, 0x5f, 0x63, 0x65, 0x72, 0x74, 0x69, 0x66, 0x69, 0x63, 0x61, 0x74, 0x65]);
const PEER_SAN_LEN: usize = 35;
// "connection\0uri_san_local_certificate"
const LOCAL_SAN: usize = memory.data<u8>([0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x0, 0x75, 0x72, 0x69, 0x5f, 0x73, 0x61, 0x6e, 0x5f, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x5f, 0x63, 0x65, 0x72, 0x74, 0x69, 0x66, 0x69, 0x63, 0x61, 0x74, 0x65]);
const LOCAL_SAN_LEN: usize = 36;
// "destination\0port"
const DST_PORT: usize = memory.data<u8>([0x64, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x0, 0x70, 0x6f, 0x72, 0x74]);
const DST_PORT_LEN: usize = 16;

const ROLLOUT_OBSERVE: i32 = 1;
const ROLLOUT_ENFORCE: i32 = 2;

/**
 * A certificate's URI SAN: its length (the bytes at retPtr()), 0 when there is none, or -1
 * when it is longer than any SPIFFE ID: then malloc refused it (nothing was copied), and -1
 * makes the evaluator reject it like any other invalid ID.
 */
function san(path: usize, pathLen: usize): i32 {
  const st = getProperty(path, pathLen, MAX_ID_BYTES);
  return st == PROP_FOUND ? retSize() : st == PROP_REFUSED ? -1 : 0;
}

/** Decides the current stream (its connection properties) for the root in `slot`. */
export function decide(slot: u32): void {
  if (slot == NO_ROOT || !rootAt(slot).configured) {
    block = true;
    reason = REASON_INTERNAL_ERROR;
    rule = -1;
    countMetric(M_DENY, 1);
    return;
  }
  const r = rootAt(slot);
  // The clock is read only for the audit record (its time and latency): with audit off, a
  // decision makes no clock call.
  const audit = r.auditEnabled();
  const t0: u64 = audit ? nowNs() : 0;

  let flags: u8 = 0;
  let src: usize = 0;
  const srcLen = san(PEER_SAN, PEER_SAN_LEN);
  if (srcLen > 0) src = retPtr();
  else if (srcLen < 0) flags |= F_SRC_INVALID;
  let dst = r.identityPtr;
  let dstLen = r.identityLen;
  if (dstLen == 0) {
    dstLen = san(LOCAL_SAN, LOCAL_SAN_LEN);
    if (dstLen > 0) dst = retPtr();
    else if (dstLen < 0) flags |= F_DST_INVALID;
  }
  const p = getIntProperty(DST_PORT, DST_PORT_LEN);
  const port: i32 = p < 0 || p > 65535 ? -1 : <i32>p;

  let res: i32;
  if (dstLen == 0) {
    res = REASON_INTERNAL_ERROR;
    flags |= F_DST_MISSING;
  } else res = evalService(src, srcLen, dst, dstLen, port);
  if (srcLen == 0) {
    flags |= F_SRC_MISSING;
    countMetric(M_NO_PEER_ID, 1);
  }
  reason = res & 15;
  const rollout = (res >>> 4) & 3;
  rule = (res >>> 6) - 1;
  // Allowed, denied, default deny and undeclared source mean the evaluator parsed both IDs;
  // otherwise check them here so the audit record never carries an invalid SPIFFE ID.
  if (reason > REASON_SOURCE_UNDECLARED) {
    if (srcLen > 0 && !isSpiffeId(src, srcLen)) flags |= F_SRC_INVALID;
    if (dstLen > 0 && !isSpiffeId(dst, dstLen)) flags |= F_DST_INVALID;
  }
  // A per-destination rollout setting in the policy overrides the configured default mode.
  const enforce = rollout == ROLLOUT_ENFORCE || (rollout != ROLLOUT_OBSERVE && r.mode == MODE_ENFORCE);
  const allow = reason == REASON_ALLOWED_BY_RULE;
  if (allow) flags |= F_ALLOW;
  if (enforce) flags |= F_ENFORCED;
  block = !allow && enforce;
  if (audit) {
    const t1 = nowNs();
    // The version that decided: the synced image's, else the one configured with the module.
    const synced = imageVersionLen() > 0;
    const vp = synced ? imageVersionPtr() : r.versionPtr;
    const vl = synced ? imageVersionLen() : <usize>r.versionLen;
    appendRecord(r, t0, t1 > t0 ? t1 - t0 : 0, rule, vp, vl, port, reason, flags, src, srcLen, dst, dstLen);
  }
  countMetric(allow ? M_ALLOW : enforce ? M_DENY : M_OBSERVE_DENY, 1);
}
