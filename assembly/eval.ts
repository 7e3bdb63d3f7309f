// The evaluator: walks the tries of the policy image. Cost grows with the length of the
// request's IDs (and the few wildcard branches that match), never with the number of rules.
import {
  E_FLAGS, E_PORTS, E_RULE, F_DENY, F_REQUIRE_INCIDENT, F_REQUIRE_MFA, H_OPERATOR_ROOT, H_ROLLOUT_ROOT, H_SERVICE_ROOT,
  N_END, N_ENTRY_COUNT, N_ENTRY_START, N_GLOB, N_STAR, NONE, OP_FLAG_INCIDENT, OP_FLAG_MFA,
  REASON_ALLOWED_BY_RULE, REASON_CONDITION_INCIDENT, REASON_CONDITION_MFA, REASON_DEFAULT_DENY, REASON_DENIED_BY_RULE,
  REASON_INTERNAL_ERROR, REASON_INVALID_REQUEST, REASON_ROLE_UNDECLARED, REASON_SOURCE_UNDECLARED, RESULT_ROLLOUT_SHIFT,
  RESULT_RULE_SHIFT,
} from "./layout";
import { image, isReady } from "./boot";
import { dstSegPtr, srcSegPtr } from "./memory";
import { splitSpiffeId } from "./spiffe";
import { entryAddr, literalChild, nodeField } from "./trie";

const NO_RULE: u32 = 0xffffffff;

// Per-call state (globals, not allocations).
let srcPtr: usize = 0;
let dstPtr: usize = 0;
let srcN: i32 = 0;
let dstN: i32 = 0;
let port: u32 = 0;
let declared: bool = false;
let bestAllow: u32 = NO_RULE;
let bestDeny: u32 = NO_RULE;
let rolloutMode: u32 = 0;

// @ts-ignore: decorator
@inline function result(reason: i32, rule: u32, rollout: u32): i32 {
  const r = rule == NO_RULE ? 0 : rule + 1;
  return reason | <i32>(rollout << RESULT_ROLLOUT_SHIFT) | <i32>(r << RESULT_RULE_SHIFT);
}

function scanService(leaf: u32): void {
  const start = nodeField(leaf, N_ENTRY_START);
  const count = nodeField(leaf, N_ENTRY_COUNT);
  for (let i: u32 = 0; i < count; i++) {
    const e = entryAddr(start + i);
    const ports = load<u32>(e + E_PORTS);
    if (port < (ports & 0xffff) || port > (ports >>> 16)) continue;
    const rule = load<u32>(e + E_RULE);
    if (load<u32>(e + E_FLAGS) & F_DENY) {
      if (rule < bestDeny) bestDeny = rule;
    } else if (rule < bestAllow) bestAllow = rule;
  }
}

function scanRollout(leaf: u32): void {
  const start = nodeField(leaf, N_ENTRY_START);
  const count = nodeField(leaf, N_ENTRY_COUNT);
  for (let i: u32 = 0; i < count; i++) {
    const mode = load<u32>(entryAddr(start + i) + E_FLAGS);
    if (mode > rolloutMode) rolloutMode = mode;
  }
}

// Which walk a node visit belongs to.
const WALK_DST: i32 = 0;
const WALK_ROLLOUT: i32 = 1;

/** Walks the destination ID from `node`; at its end, hands the leaf to the scanner. */
function walkDst(node: u32, i: i32, kind: i32): void {
  if (i == dstN) {
    const end = nodeField(node, N_END);
    if (end != <u32>NONE) {
      if (kind == WALK_DST) scanService(end);
      else scanRollout(end);
    }
    return;
  }
  const segs = dstSegPtr() + <usize>i * 8;
  const c = literalChild(node, dstPtr + <usize>load<u32>(segs), <i32>load<u32>(segs + 4));
  if (c != <u32>NONE) walkDst(c, i + 1, kind);
  if (i == 0) return; // the trust domain is always literal
  const star = nodeField(node, N_STAR);
  if (star != <u32>NONE) walkDst(star, i + 1, kind);
  const glob = nodeField(node, N_GLOB);
  if (glob != <u32>NONE) {
    if (kind == WALK_DST) scanService(glob);
    else scanRollout(glob);
  }
}

/** Walks the source ID; every source pattern that matches continues into its destination trie. */
function walkSrc(node: u32, i: i32): void {
  if (i == srcN) {
    const end = nodeField(node, N_END);
    if (end != <u32>NONE) {
      declared = true;
      walkDst(end, 0, WALK_DST);
    }
    return;
  }
  const segs = srcSegPtr() + <usize>i * 8;
  const c = literalChild(node, srcPtr + <usize>load<u32>(segs), <i32>load<u32>(segs + 4));
  if (c != <u32>NONE) walkSrc(c, i + 1);
  if (i == 0) return;
  const star = nodeField(node, N_STAR);
  if (star != <u32>NONE) walkSrc(star, i + 1);
  const glob = nodeField(node, N_GLOB);
  if (glob != <u32>NONE) {
    declared = true;
    walkDst(glob, 0, WALK_DST);
  }
}

function rolloutFor(): u32 {
  rolloutMode = 0;
  walkDst(load<u32>(image() + H_ROLLOUT_ROOT), 0, WALK_ROLLOUT);
  return rolloutMode;
}

/**
 * Decides a service request: may `src` reach `dst` on `p`? Both IDs are UTF-8 bytes in
 * linear memory. Returns the packed result (assembly/layout.ts).
 */
export function evalService(src: usize, srcLen: i32, dst: usize, dstLen: i32, p: i32): i32 {
  if (!isReady()) return result(REASON_INTERNAL_ERROR, NO_RULE, 0);
  srcPtr = src;
  dstPtr = dst;
  dstN = splitSpiffeId(dst, dstLen, dstSegPtr());
  const rollout = dstN < 0 ? 0 : rolloutFor();
  srcN = splitSpiffeId(src, srcLen, srcSegPtr());
  if (srcN < 0 || dstN < 0 || p < 0 || p > 65535) return result(REASON_INVALID_REQUEST, NO_RULE, rollout);
  port = <u32>p;
  declared = false;
  bestAllow = NO_RULE;
  bestDeny = NO_RULE;
  walkSrc(load<u32>(image() + H_SERVICE_ROOT), 0);
  if (bestDeny != NO_RULE) return result(REASON_DENIED_BY_RULE, bestDeny, rollout);
  if (bestAllow != NO_RULE) return result(REASON_ALLOWED_BY_RULE, bestAllow, rollout);
  return result(declared ? REASON_DEFAULT_DENY : REASON_SOURCE_UNDECLARED, NO_RULE, rollout);
}

/** The rollout mode the policy sets for a destination: 0 none, 1 observe, 2 enforce. */
export function evalRollout(dst: usize, dstLen: i32): i32 {
  if (!isReady()) return 0;
  dstPtr = dst;
  dstN = splitSpiffeId(dst, dstLen, dstSegPtr());
  if (dstN < 0) return 0;
  return <i32>rolloutFor();
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

function scanActions(svc: u32, act: usize, actLen: i32): void {
  if (svc == <u32>NONE) return;
  scanOperator(literalChild(svc, act, actLen));
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
    const roleNode = literalChild(root, r, <i32>(rEnd - r));
    if (roleNode != <u32>NONE) {
      roleDeclared = true;
      scanActions(literalChild(roleNode, buf, svcLen), act, actLen);
      scanActions(nodeField(roleNode, N_STAR), act, actLen);
    }
    r = rEnd + 1;
  }
  if (opPass != NO_RULE) return result(REASON_ALLOWED_BY_RULE, opPass, 0);
  if (opFail != NO_RULE) return result(opFailReason, opFail, 0);
  return result(roleDeclared ? REASON_DEFAULT_DENY : REASON_ROLE_UNDECLARED, NO_RULE, 0);
}

