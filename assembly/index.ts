// The ZT policy module. boot must be imported first: it reserves the policy image before
// anything else can allocate.
import "./boot";
import { isReady } from "./boot";
import { ioPtr } from "./memory";
import { evalOperator, evalRollout, evalService } from "./eval";
import { ruleCount, ruleIdLen, ruleIdPtr } from "./trie";
import { IO_BUFFER_SIZE, MAX_ID_BYTES } from "./layout";
import { sha256 } from "./sha256";

// ---- The host API (host/runtime.ts). Requests are written into the I/O buffer. ----

/** Address of the I/O buffer (IO_BUFFER_SIZE bytes). */
export function zt_io(): usize {
  return ioPtr();
}

export function zt_ready(): i32 {
  return isReady() ? 1 : 0;
}

/**
 * Service request: source ID at io[0..srcLen), destination ID at io[MAX_ID_BYTES..+dstLen).
 * A length over MAX_ID_BYTES marks that ID as over-long: it is invalid on its own, and the
 * other one is still read (the destination's rollout applies), as in the filter.
 */
export function zt_eval_service(srcLen: i32, dstLen: i32, port: i32): i32 {
  const io = ioPtr();
  const s = srcLen < 0 || srcLen > MAX_ID_BYTES ? -1 : srcLen;
  const d = dstLen < 0 || dstLen > MAX_ID_BYTES ? -1 : dstLen;
  return evalService(io, s, io + <usize>MAX_ID_BYTES, d, port);
}

/** Operator request encoded at io[0..len) (see layout.ts). */
export function zt_eval_operator(len: i32, flags: i32): i32 {
  if (len < 0 || len > IO_BUFFER_SIZE) return evalOperator(0, 0, flags);
  return evalOperator(ioPtr(), len, flags);
}

/** Rollout mode for the destination ID at io[0..len). */
export function zt_eval_rollout(len: i32): i32 {
  if (len < 0 || len > MAX_ID_BYTES) return 0;
  return evalRollout(ioPtr(), len);
}

export function zt_rule_count(): i32 {
  return isReady() ? <i32>ruleCount() : 0;
}

export function zt_rule_id_ptr(idx: i32): usize {
  return isReady() ? ruleIdPtr(idx) : 0;
}

export function zt_rule_id_len(idx: i32): i32 {
  return isReady() ? ruleIdLen(idx) : 0;
}

/** SHA-256 of [ptr, ptr+len) into out[0..32): the filter's image check, exported for its tests. */
export function zt_sha256(ptr: usize, len: usize, out: usize): void {
  sha256(ptr, len, out);
}

export * from "./proxy/exports";
