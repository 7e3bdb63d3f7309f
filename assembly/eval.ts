// The evaluator: walks the tries of the policy image. Cost grows with the length of the
// request's IDs (and the few wildcard patterns that match them), never with the number of rules.
import {
  E_FLAGS, E_PORTS, E_RULE, F_DENY, F_REQUIRE_INCIDENT, F_REQUIRE_MFA, H_ID_ROOT, H_OPERATOR_ROOT, ID_SEED, MAX_MATCHED_PATTERNS,
  N_END, N_ENTRY_COUNT, N_ENTRY_START, N_GLOB, N_STAR, NONE, OP_FLAG_INCIDENT, OP_FLAG_MFA, OP_SEED, P_FROM, P_PARTNER_SHIFT,
  P_ROLLOUT_MASK, P_ROLLOUT_SHIFT, PARTNER_BIT_SHIFT, PR_A, PR_B, PR_DENY, PR_MANY, PR_VALUE_MASK, S_CHILD, S_END, S_END_FLAGS,
  REASON_ALLOWED_BY_RULE, REASON_CONDITION_INCIDENT, REASON_CONDITION_MFA, REASON_DEFAULT_DENY, REASON_DENIED_BY_RULE,
  REASON_INTERNAL_ERROR, REASON_INVALID_REQUEST, REASON_ROLE_UNDECLARED, REASON_SOURCE_UNDECLARED, RESULT_ROLLOUT_SHIFT,
  RESULT_RULE_SHIFT,
} from "./layout";
import { image, isReady } from "./boot";
import { globKey, segHash, starHash } from "./hash";
import { dstSegPtr, SEG_HASH, SEG_LEN, SEG_OFF, SEG_STRIDE, srcSegPtr } from "./memory";
import { splitSpiffeId } from "./spiffe";
import { entryAddr, literalChild, literalSlot, nodeField, pairSlot, patternFlags } from "./trie";

const NO_RULE: u32 = 0xffffffff;

// Matched patterns of the current request's source and destination: (id, flags, key)
// records of MATCH_STRIDE bytes (fixed buffers).
const MATCH_STRIDE: usize = 16;
const M_ID: usize = 0;
const M_FLAGS: usize = 4;
const M_KEY: usize = 8;
const srcMatches = memory.data(MAX_MATCHED_PATTERNS * <i32>MATCH_STRIDE);
const dstMatches = memory.data(MAX_MATCHED_PATTERNS * <i32>MATCH_STRIDE);

// Per-call state (globals, not allocations).
let idPtr: usize = 0;
let idSegs: usize = 0;
let idN: i32 = 0;
let out: usize = 0;
let outN: i32 = 0;
let overflow: bool = false;

// @ts-ignore: decorator
@inline function result(reason: i32, rule: u32, rollout: u32): i32 {
  const r = rule == NO_RULE ? 0 : rule + 1;
  return reason | <i32>(rollout << RESULT_ROLLOUT_SHIFT) | <i32>(r << RESULT_RULE_SHIFT);
}

// @ts-ignore: decorator
@inline function emitWithFlags(pattern: u32, flags: u32, key: u32): void {
  if (pattern == <u32>NONE) return;
  if (outN >= MAX_MATCHED_PATTERNS) {
    overflow = true;
    return;
  }
  const at = out + <usize>outN * MATCH_STRIDE;
  store<u32>(at + M_ID, pattern);
  store<u32>(at + M_FLAGS, flags);
  store<u32>(at + M_KEY, key);
  outN++;
}

// @ts-ignore: decorator
@inline function emit(pattern: u32, key: u32): void {
  if (pattern != <u32>NONE) emitWithFlags(pattern, patternFlags(pattern), key);
}

/**
 * Collects every pattern matching the current ID from segment i at `node`, whose path hash
 * is `h`. On the ID's own literal path the children's hashes are already in the segment table.
 */
function collect(node: u32, i: i32, h: u32, literal: bool): void {
  if (i == idN) {
    emit(nodeField(node, N_END), h);
    return;
  }
  const seg = idSegs + <usize>i * SEG_STRIDE;
  const ptr = idPtr + <usize>load<u32>(seg + SEG_OFF);
  const len = <i32>load<u32>(seg + SEG_LEN);
  const ch = literal ? load<u32>(seg + SEG_HASH) : segHash(h, ptr, len);
  const slot = literalSlot(node, ptr, len, ch);
  if (slot != 0) {
    // At the last segment only the child's END matters, and the slot carries it.
    if (i + 1 == idN) emitWithFlags(load<u32>(slot + S_END), load<u32>(slot + S_END_FLAGS), ch);
    else collect(load<u32>(slot + S_CHILD), i + 1, ch, literal);
  }
  if (i == 0) return; // the trust domain is always literal
  const star = nodeField(node, N_STAR);
  if (star != <u32>NONE) collect(star, i + 1, starHash(h), false);
  const glob = nodeField(node, N_GLOB); // "**": one or more remaining segments
  if (glob != <u32>NONE) emit(glob, globKey(h));
}

/** Matches one split ID; returns the number of matched patterns. */
function matchSplit(ptr: usize, segs: usize, n: i32, buf: usize): i32 {
  idPtr = ptr;
  idSegs = segs;
  idN = n;
  out = buf;
  outN = 0;
  collect(load<u32>(image() + H_ID_ROOT), 0, <u32>ID_SEED, true);
  return outN;
}

function rolloutOf(nDst: i32): u32 {
  let mode: u32 = 0;
  for (let j = 0; j < nDst; j++) {
    const m = (load<u32>(dstMatches + <usize>j * MATCH_STRIDE + M_FLAGS) >>> P_ROLLOUT_SHIFT) & P_ROLLOUT_MASK;
    if (m > mode) mode = m;
  }
  return mode;
}

let bestAllow: u32 = NO_RULE;
let bestDeny: u32 = NO_RULE;

// @ts-ignore: decorator
@inline function consider(ports: u32, rule: u32, deny: bool, port: u32): void {
  if (port < (ports & 0xffff) || port > (ports >>> 16)) return;
  if (deny) {
    if (rule < bestDeny) bestDeny = rule;
  } else if (rule < bestAllow) bestAllow = rule;
}

/**
 * Decides a service request: may `src` reach `dst` on `p`? Both IDs are UTF-8 bytes in
 * linear memory. Returns the packed result (assembly/layout.ts).
 */
export function evalService(src: usize, srcLen: i32, dst: usize, dstLen: i32, p: i32): i32 {
  if (!isReady()) return result(REASON_INTERNAL_ERROR, NO_RULE, 0);
  overflow = false;
  const dSegs = dstSegPtr();
  const sSegs = srcSegPtr();
  const dN = splitSpiffeId(dst, dstLen, dSegs);
  const sN = splitSpiffeId(src, srcLen, sSegs);
  const nDst = dN < 0 ? -1 : matchSplit(dst, dSegs, dN, dstMatches);
  const rollout = nDst < 0 ? 0 : rolloutOf(nDst);
  if (sN < 0 || nDst < 0 || p < 0 || p > 65535) return result(REASON_INVALID_REQUEST, NO_RULE, rollout);
  const nSrc = matchSplit(src, sSegs, sN, srcMatches);
  if (overflow) return result(REASON_INTERNAL_ERROR, NO_RULE, rollout);
  const port = <u32>p;
  let declared = false;
  bestAllow = NO_RULE;
  bestDeny = NO_RULE;
  for (let i = 0; i < nSrc; i++) {
    const at = srcMatches + <usize>i * MATCH_STRIDE;
    const flags = load<u32>(at + M_FLAGS);
    if (!(flags & P_FROM)) continue;
    declared = true;
    const s = load<u32>(at + M_ID);
    const ks = load<u32>(at + M_KEY);
    const partners = flags >>> P_PARTNER_SHIFT;
    for (let j = 0; j < nDst; j++) {
      const dm = dstMatches + <usize>j * MATCH_STRIDE;
      const kd = load<u32>(dm + M_KEY);
      if (!(partners & (<u32>1 << (kd >>> PARTNER_BIT_SHIFT)))) continue; // the pair cannot exist
      const slot = pairSlot(s, load<u32>(dm + M_ID), ks, kd);
      if (slot == 0) continue;
      const a = load<u32>(slot + PR_A);
      const b = load<u32>(slot + PR_B);
      if (!(b & PR_MANY)) {
        consider(a, b & PR_VALUE_MASK, (b & PR_DENY) != 0, port);
        continue;
      }
      const count = b & PR_VALUE_MASK;
      for (let k: u32 = 0; k < count; k++) {
        const e = entryAddr(a + k);
        consider(load<u32>(e + E_PORTS), load<u32>(e + E_RULE), (load<u32>(e + E_FLAGS) & F_DENY) != 0, port);
      }
    }
  }
  if (bestDeny != NO_RULE) return result(REASON_DENIED_BY_RULE, bestDeny, rollout);
  if (bestAllow != NO_RULE) return result(REASON_ALLOWED_BY_RULE, bestAllow, rollout);
  return result(declared ? REASON_DEFAULT_DENY : REASON_SOURCE_UNDECLARED, NO_RULE, rollout);
}

/** The rollout mode the policy sets for a destination: 0 none, 1 observe, 2 enforce. */
export function evalRollout(dst: usize, dstLen: i32): i32 {
  if (!isReady()) return 0;
  overflow = false;
  const segs = dstSegPtr();
  const n = splitSpiffeId(dst, dstLen, segs);
  return n < 0 ? 0 : <i32>rolloutOf(matchSplit(dst, segs, n, dstMatches));
}

// Operator state.
let opPass: u32 = NO_RULE;
let opFail: u32 = NO_RULE;
let opFailReason: i32 = 0;
let opFlags: i32 = 0;

function scanOperator(leaf: u32): void {
  if (leaf == <u32>NONE) return;
  const start = nodeField(leaf, N_ENTRY_START);
  const count = nodeField(leaf, N_ENTRY_COUNT);
  for (let i: u32 = 0; i < count; i++) {
    const e = entryAddr(start + i);
    const rule = load<u32>(e + E_RULE);
    const need = load<u32>(e + E_FLAGS);
    let failed = 0;
    if ((need & F_REQUIRE_MFA) && !(opFlags & OP_FLAG_MFA)) failed = REASON_CONDITION_MFA;
    else if ((need & F_REQUIRE_INCIDENT) && !(opFlags & OP_FLAG_INCIDENT)) failed = REASON_CONDITION_INCIDENT;
    if (failed == 0) {
      if (rule < opPass) opPass = rule;
    } else if (rule < opFail) {
      opFail = rule;
      opFailReason = failed;
    }
  }
}

function scanActions(svc: u32, svcHash: u32, act: usize, actLen: i32): void {
  if (svc == <u32>NONE) return;
  scanOperator(literalChild(svc, act, actLen, segHash(svcHash, act, actLen)));
  scanOperator(nodeField(svc, N_STAR));
}

// @ts-ignore: decorator
@inline function nextNul(p: usize, end: usize): usize {
  while (p < end && load<u8>(p) != 0) p++;
  return p;
}

/**
 * Decides an operator request encoded as `service NUL action NUL role (NUL role)*` in
 * [buf, buf+len); flags: bit 0 MFA done, bit 1 the referenced incident is active.
 */
export function evalOperator(buf: usize, len: i32, flags: i32): i32 {
  if (!isReady()) return result(REASON_INTERNAL_ERROR, NO_RULE, 0);
  const end = buf + <usize>len;
  const svcEnd = nextNul(buf, end);
  if (svcEnd >= end) return result(REASON_INVALID_REQUEST, NO_RULE, 0);
  const act = svcEnd + 1;
  const actEnd = nextNul(act, end);
  const svcLen = <i32>(svcEnd - buf);
  const actLen = <i32>(actEnd - act);
  if (svcLen == 0 || actLen == 0) return result(REASON_INVALID_REQUEST, NO_RULE, 0);
  opPass = NO_RULE;
  opFail = NO_RULE;
  opFailReason = 0;
  opFlags = flags;
  let roleDeclared = false;
  const root = load<u32>(image() + H_OPERATOR_ROOT);
  let r = actEnd + 1;
  while (r < end) {
    const rEnd = nextNul(r, end);
    const roleLen = <i32>(rEnd - r);
    const roleHash = segHash(<u32>OP_SEED, r, roleLen);
    const roleNode = literalChild(root, r, roleLen, roleHash);
    if (roleNode != <u32>NONE) {
      roleDeclared = true;
      const svcHash = segHash(roleHash, buf, svcLen);
      scanActions(literalChild(roleNode, buf, svcLen, svcHash), svcHash, act, actLen);
      scanActions(nodeField(roleNode, N_STAR), starHash(roleHash), act, actLen);
    }
    r = rEnd + 1;
  }
  if (opPass != NO_RULE) return result(REASON_ALLOWED_BY_RULE, opPass, 0);
  if (opFail != NO_RULE) return result(opFailReason, opFail, 0);
  return result(roleDeclared ? REASON_DEFAULT_DENY : REASON_ROLE_UNDECLARED, NO_RULE, 0);
}
