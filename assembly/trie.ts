// Reading the policy image: nodes, literal edges (hash table), payload entries, rule ids.
import {
  H_EDGE_CAP, H_EDGES_OFF, H_ENTRIES_OFF, H_NODES_OFF, H_PAIR_CAP, H_PAIRS_OFF, H_PATTERNS_OFF,
  H_RULE_COUNT, H_RULES_OFF, H_STRINGS_OFF, ENTRY_SIZE, MIX_A, MIX_B, NODE_SIZE, NONE, PAIR_SIZE, PATTERN_SIZE, PR_DST,
  PR_SRC, R_STR_LEN, R_STR_OFF, RULE_SIZE, S_CHILD, S_PARENT, S_PREFIX, S_STR_LEN, S_STR_OFF, SLOT_SIZE,
} from "./layout";
import { image } from "./boot";

// @ts-ignore: decorator
@inline export function nodeAddr(node: u32): usize {
  const img = image();
  return img + <usize>load<u32>(img + H_NODES_OFF) + <usize>node * NODE_SIZE;
}

// @ts-ignore: decorator
@inline export function nodeField(node: u32, field: i32): u32 {
  return load<u32>(nodeAddr(node) + <usize>field);
}

export function entryAddr(index: u32): usize {
  const img = image();
  return img + <usize>load<u32>(img + H_ENTRIES_OFF) + <usize>index * ENTRY_SIZE;
}

/** Equal byte ranges? Eight bytes at a time, then the tail. */
function bytesEqual(a: usize, b: usize, len: i32): bool {
  let i = 0;
  for (; i + 8 <= len; i += 8) if (load<u64>(a + <usize>i) != load<u64>(b + <usize>i)) return false;
  for (; i < len; i++) if (load<u8>(a + <usize>i) != load<u8>(b + <usize>i)) return false;
  return true;
}

/** The segment's first min(8, len) bytes as a zero-padded u64, like S_PREFIX. */
// @ts-ignore: decorator
@inline function prefixOf(ptr: usize, len: i32): u64 {
  // Reading 8 bytes past a short segment stays inside the I/O buffer or the image.
  const word = load<u64>(ptr);
  return len >= 8 ? word : word & ((<u64>1 << (<u64>len << 3)) - 1);
}

/**
 * The edge slot of `parent` along the literal segment [ptr, ptr+len), or 0. `h` is the path
 * hash the child would have (segHash of the parent's hash and the segment).
 */
export function literalSlot(parent: u32, ptr: usize, len: i32, h: u32): usize {
  const img = image();
  const mask = load<u32>(img + H_EDGE_CAP) - 1;
  const table = img + <usize>load<u32>(img + H_EDGES_OFF);
  const prefix = prefixOf(ptr, len);
  let slot = h & mask;
  while (true) {
    const s = table + <usize>slot * SLOT_SIZE;
    const p = load<u32>(s + S_PARENT);
    if (p == <u32>NONE) return 0;
    if (p == parent && load<u32>(s + S_STR_LEN) == <u32>len && load<u64>(s + S_PREFIX) == prefix) {
      if (len <= 8) return s;
      const strings = img + <usize>load<u32>(img + H_STRINGS_OFF);
      if (bytesEqual(strings + <usize>load<u32>(s + S_STR_OFF) + 8, ptr + 8, len - 8)) return s;
    }
    slot = (slot + 1) & mask;
  }
}

/** The child of `parent` along a literal segment, whose path hash is `childHash`, or NONE. */
export function literalChild(parent: u32, ptr: usize, len: i32, childHash: u32): u32 {
  const s = literalSlot(parent, ptr, len, childHash);
  return s == 0 ? <u32>NONE : load<u32>(s + S_CHILD);
}

export function ruleCount(): u32 {
  return load<u32>(image() + H_RULE_COUNT);
}

function ruleAddr(idx: u32): usize {
  const img = image();
  return img + <usize>load<u32>(img + H_RULES_OFF) + <usize>idx * RULE_SIZE;
}

export function ruleIdPtr(idx: i32): usize {
  if (idx < 0 || <u32>idx >= ruleCount()) return 0;
  const img = image();
  return img + <usize>load<u32>(img + H_STRINGS_OFF) + <usize>load<u32>(ruleAddr(<u32>idx) + R_STR_OFF);
}

export function ruleIdLen(idx: i32): i32 {
  if (idx < 0 || <u32>idx >= ruleCount()) return 0;
  return <i32>load<u32>(ruleAddr(<u32>idx) + R_STR_LEN);
}

export function patternFlags(pattern: u32): u32 {
  const img = image();
  return load<u32>(img + <usize>load<u32>(img + H_PATTERNS_OFF) + <usize>pattern * PATTERN_SIZE);
}

// @ts-ignore: decorator
@inline function pairIndex(srcKey: u32, dstKey: u32): u32 {
  let h: u32 = srcKey * <u32>MIX_A ^ dstKey;
  h = (h ^ (h >>> 15)) * <u32>MIX_B;
  return h ^ (h >>> 13);
}

/** The pair slot of (source pattern, destination pattern), or 0 when the pair has no rules. */
export function pairSlot(src: u32, dst: u32, srcKey: u32, dstKey: u32): usize {
  const img = image();
  const mask = load<u32>(img + H_PAIR_CAP) - 1;
  const table = img + <usize>load<u32>(img + H_PAIRS_OFF);
  let slot = pairIndex(srcKey, dstKey) & mask;
  while (true) {
    const s = table + <usize>slot * PAIR_SIZE;
    const ps = load<u32>(s + PR_SRC);
    if (ps == <u32>NONE) return 0;
    if (ps == src && load<u32>(s + PR_DST) == dst) return s;
    slot = (slot + 1) & mask;
  }
}
