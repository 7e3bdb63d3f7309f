// Reading the policy image: nodes, literal edges (hash table), payload entries, rule ids.
import {
  FNV_OFFSET, FNV_PRIME, H_ENTRIES_OFF, H_HASH_CAP, H_HASH_OFF, H_NODES_OFF, H_RULE_COUNT, H_RULES_OFF, H_STRINGS_OFF,
  ENTRY_SIZE, NODE_SIZE, NONE, R_STR_LEN, R_STR_OFF, RULE_SIZE, S_CHILD, S_PARENT, S_STR_LEN, S_STR_OFF, SLOT_SIZE,
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

/** The child of `parent` along the literal segment [ptr, ptr+len), or NONE. */
export function literalChild(parent: u32, ptr: usize, len: i32): u32 {
  const img = image();
  let h: u32 = (<u32>FNV_OFFSET ^ parent) * <u32>FNV_PRIME;
  for (let i = 0; i < len; i++) h = (h ^ <u32>load<u8>(ptr + <usize>i)) * <u32>FNV_PRIME;
  const mask = load<u32>(img + H_HASH_CAP) - 1;
  const table = img + <usize>load<u32>(img + H_HASH_OFF);
  const strings = img + <usize>load<u32>(img + H_STRINGS_OFF);
  let slot = h & mask;
  while (true) {
    const s = table + <usize>slot * SLOT_SIZE;
    const p = load<u32>(s + S_PARENT);
    if (p == <u32>NONE) return <u32>NONE;
    if (p == parent && load<u32>(s + S_STR_LEN) == <u32>len) {
      if (memory.compare(strings + <usize>load<u32>(s + S_STR_OFF), ptr, <usize>len) == 0) return load<u32>(s + S_CHILD);
    }
    slot = (slot + 1) & mask;
  }
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
