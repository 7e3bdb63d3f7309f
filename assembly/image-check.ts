// Structural check of a policy image received at run time (policy sync), before it may be
// installed: header magic, a format version this evaluator reads, the length, every table
// inside the image, hash tables of power-of-two size with at least one empty slot (a probe
// always ends), and every index the evaluator follows (children, patterns, entries, rules,
// strings) pointing inside its table. An image that passes cannot make the evaluator read
// outside it or loop forever; its sha256 (checked by the caller) says it is the one the
// engine announced. One linear pass over the tables, no allocation.
import {
  E_RULE, ENTRY_SIZE, FORMAT_VERSION, H_EDGE_CAP, H_EDGES_OFF, H_ENTRIES_OFF, H_ENTRY_COUNT, H_ID_ROOT, H_MAGIC, H_NODE_COUNT, H_NODES_OFF,
  H_OPERATOR_ROOT, H_PAIR_CAP, H_PAIRS_OFF, H_PATTERN_COUNT, H_PATTERNS_OFF, H_RULE_COUNT, H_RULES_OFF, H_STRINGS_LEN, H_STRINGS_OFF,
  H_TOTAL_LEN, H_VERSION, IMAGE_HEADER_SIZE, IMAGE_MAGIC, N_END, N_ENTRY_COUNT, N_ENTRY_START, N_GLOB, N_STAR, NODE_SIZE, NONE, PAIR_SIZE,
  PATTERN_SIZE, PR_A, PR_B, PR_DST, PR_MANY, PR_SRC, PR_VALUE_MASK, R_STR_LEN, R_STR_OFF, RULE_SIZE, S_CHILD, S_END, S_PARENT, S_STR_LEN,
  S_STR_OFF, SLOT_SIZE,
} from "./layout";

export const IMAGE_OK: i32 = 0;
export const IMAGE_TOO_SHORT: i32 = 1;
export const IMAGE_BAD_MAGIC: i32 = 2;
export const IMAGE_UNKNOWN_FORMAT: i32 = 3;
export const IMAGE_BAD_LENGTH: i32 = 4;
export const IMAGE_BAD_TABLE: i32 = 5;
export const IMAGE_BAD_INDEX: i32 = 6;

/** Why an image was refused, for the log. */
export function imageProblem(code: i32): string {
  if (code == IMAGE_TOO_SHORT) return "shorter than an image header";
  if (code == IMAGE_BAD_MAGIC) return "not a ZT policy image (magic)";
  if (code == IMAGE_UNKNOWN_FORMAT) return "an image format this evaluator does not read (needs a filter upgrade)";
  if (code == IMAGE_BAD_LENGTH) return "its length differs from the length in its header";
  if (code == IMAGE_BAD_TABLE) return "a table lies outside the image or has an impossible size";
  if (code == IMAGE_BAD_INDEX) return "an index points outside its table";
  return "ok";
}

let base: usize = 0;
let total: u64 = 0;

// @ts-ignore: decorator
@inline function hdr(field: i32): u32 {
  return load<u32>(base + <usize>field);
}

/** [off, off + count * size) inside the image, 4-byte aligned. */
function within(off: u32, count: u32, size: u32): bool {
  return (off & 3) == 0 && <u64>off + <u64>count * <u64>size <= total;
}

function pow2(n: u32): bool {
  return n != 0 && (n & (n - 1)) == 0;
}

/** NONE or below `count`. */
// @ts-ignore: decorator
@inline function ref(v: u32, count: u32): bool {
  return v == <u32>NONE || v < count;
}

/** Checks the image at [ptr, ptr + len); IMAGE_OK or the first problem found. */
export function checkImage(ptr: usize, len: usize): i32 {
  base = ptr;
  total = <u64>len;
  if (len < <usize>IMAGE_HEADER_SIZE) return IMAGE_TOO_SHORT;
  if (hdr(H_MAGIC) != <u32>IMAGE_MAGIC) return IMAGE_BAD_MAGIC;
  if (hdr(H_VERSION) != <u32>FORMAT_VERSION) return IMAGE_UNKNOWN_FORMAT;
  if (<u64>hdr(H_TOTAL_LEN) != total) return IMAGE_BAD_LENGTH;

  const nodes = hdr(H_NODE_COUNT);
  const edgeCap = hdr(H_EDGE_CAP);
  const pairCap = hdr(H_PAIR_CAP);
  const entries = hdr(H_ENTRY_COUNT);
  const patterns = hdr(H_PATTERN_COUNT);
  const rules = hdr(H_RULE_COUNT);
  const strings = hdr(H_STRINGS_LEN);
  if (!within(hdr(H_NODES_OFF), nodes, NODE_SIZE)) return IMAGE_BAD_TABLE;
  if (!pow2(edgeCap) || !within(hdr(H_EDGES_OFF), edgeCap, SLOT_SIZE)) return IMAGE_BAD_TABLE;
  if (!pow2(pairCap) || !within(hdr(H_PAIRS_OFF), pairCap, PAIR_SIZE)) return IMAGE_BAD_TABLE;
  if (!within(hdr(H_ENTRIES_OFF), entries, ENTRY_SIZE)) return IMAGE_BAD_TABLE;
  if (!within(hdr(H_PATTERNS_OFF), patterns, PATTERN_SIZE)) return IMAGE_BAD_TABLE;
  if (!within(hdr(H_RULES_OFF), rules, RULE_SIZE)) return IMAGE_BAD_TABLE;
  if (!within(hdr(H_STRINGS_OFF), strings, 1)) return IMAGE_BAD_TABLE;
  if (hdr(H_ID_ROOT) >= nodes || hdr(H_OPERATOR_ROOT) >= nodes) return IMAGE_BAD_INDEX;

  // Nodes: the star child, the patterns, the operator payload range.
  let p = base + <usize>hdr(H_NODES_OFF);
  for (let i: u32 = 0; i < nodes; i++, p += NODE_SIZE) {
    if (!ref(load<u32>(p + N_STAR), nodes) || !ref(load<u32>(p + N_GLOB), patterns) || !ref(load<u32>(p + N_END), patterns)) return IMAGE_BAD_INDEX;
    if (<u64>load<u32>(p + N_ENTRY_START) + <u64>load<u32>(p + N_ENTRY_COUNT) > <u64>entries) return IMAGE_BAD_INDEX;
  }
  // Literal edges: parent and child nodes, the segment in the strings, the child's pattern.
  let empty: u32 = 0;
  p = base + <usize>hdr(H_EDGES_OFF);
  for (let i: u32 = 0; i < edgeCap; i++, p += SLOT_SIZE) {
    const parent = load<u32>(p + S_PARENT);
    if (parent == <u32>NONE) {
      empty++;
      continue;
    }
    if (parent >= nodes || load<u32>(p + S_CHILD) >= nodes || !ref(load<u32>(p + S_END), patterns)) return IMAGE_BAD_INDEX;
    if (<u64>load<u32>(p + S_STR_OFF) + <u64>load<u32>(p + S_STR_LEN) > <u64>strings) return IMAGE_BAD_INDEX;
  }
  if (empty == 0) return IMAGE_BAD_TABLE;
  // Pairs: both patterns, then the one entry's rule or the entry range.
  empty = 0;
  p = base + <usize>hdr(H_PAIRS_OFF);
  for (let i: u32 = 0; i < pairCap; i++, p += PAIR_SIZE) {
    const src = load<u32>(p + PR_SRC);
    if (src == <u32>NONE) {
      empty++;
      continue;
    }
    if (src >= patterns || load<u32>(p + PR_DST) >= patterns) return IMAGE_BAD_INDEX;
    const b = load<u32>(p + PR_B);
    if (b & PR_MANY) {
      if (<u64>load<u32>(p + PR_A) + <u64>(b & PR_VALUE_MASK) > <u64>entries) return IMAGE_BAD_INDEX;
    } else if ((b & PR_VALUE_MASK) >= rules) return IMAGE_BAD_INDEX;
  }
  if (empty == 0) return IMAGE_BAD_TABLE;
  p = base + <usize>hdr(H_ENTRIES_OFF);
  for (let i: u32 = 0; i < entries; i++, p += ENTRY_SIZE) if (load<u32>(p + E_RULE) >= rules) return IMAGE_BAD_INDEX;
  p = base + <usize>hdr(H_RULES_OFF);
  for (let i: u32 = 0; i < rules; i++, p += RULE_SIZE) {
    if (<u64>load<u32>(p + R_STR_OFF) + <u64>load<u32>(p + R_STR_LEN) > <u64>strings) return IMAGE_BAD_INDEX;
  }
  return IMAGE_OK;
}
