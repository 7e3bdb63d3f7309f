// Stream contexts (HTTP requests, TCP connections) -> the root that created them (its slot
// and its context id, so a stream whose root is gone, or whose slot a new root took, is
// decided by no root: denied) and the L4 decision state. An open-addressing table in raw memory keyed by context id (ids start at 1 and
// are never reused, so 0 marks an empty slot), linear probing with backward-shift deletion
// (no tombstones, so lookups stay short however many contexts come and go). It doubles when
// 70% full; the old table is abandoned (the stub runtime never frees), so the total ever
// allocated stays below twice the largest table.
import { NO_ROOT, liveRoot, rootIdAt } from "./root";

// Slot: u32 context id | u32 root context id | u8 root slot | u8 kind | u8 L4 state | u8 spare
const SLOT: usize = 12;
const S_ID: usize = 0;
const S_ROOT_ID: usize = 4;
const S_ROOT: usize = 8;
const S_KIND: usize = 9;
const S_STATE: usize = 10;

export const KIND_UNKNOWN: u8 = 0;
export const KIND_HTTP: u8 = 1;
export const KIND_TCP: u8 = 2;

export const L4_UNDECIDED: u8 = 0;
export const L4_ALLOWED: u8 = 1;
export const L4_DENIED: u8 = 2;

const INITIAL_CAPACITY: u32 = 1024;

let tab: usize = 0;
let cap: u32 = 0;
let count: u32 = 0;

// @ts-ignore: decorator
@inline function home(id: u32, mask: u32): u32 {
  return (id * 0x9e3779b1) & mask;
}

function slotAt(t: usize, i: u32): usize {
  return t + <usize>i * SLOT;
}

function allocTable(n: u32): usize {
  const t = heap.alloc(<usize>n * SLOT);
  memory.fill(t, 0, <usize>n * SLOT);
  return t;
}

function place(t: usize, mask: u32, id: u32, rootId: u32, root: u8, kind: u8, state: u8): void {
  let i = home(id, mask);
  while (load<u32>(slotAt(t, i) + S_ID) != 0) i = (i + 1) & mask;
  const s = slotAt(t, i);
  store<u32>(s + S_ID, id);
  store<u32>(s + S_ROOT_ID, rootId);
  store<u8>(s + S_ROOT, root);
  store<u8>(s + S_KIND, kind);
  store<u8>(s + S_STATE, state);
}

function grow(): void {
  const ncap = cap == 0 ? INITIAL_CAPACITY : cap * 2;
  const nt = allocTable(ncap);
  for (let i: u32 = 0; i < cap; i++) {
    const s = slotAt(tab, i);
    const id = load<u32>(s + S_ID);
    if (id != 0) place(nt, ncap - 1, id, load<u32>(s + S_ROOT_ID), load<u8>(s + S_ROOT), load<u8>(s + S_KIND), load<u8>(s + S_STATE));
  }
  tab = nt;
  cap = ncap;
}

/** Address of the slot for `id`, or 0. */
export function findStream(id: u32): usize {
  if (cap == 0 || id == 0) return 0;
  const mask = cap - 1;
  let i = home(id, mask);
  while (true) {
    const s = slotAt(tab, i);
    const k = load<u32>(s + S_ID);
    if (k == id) return s;
    if (k == 0) return 0;
    i = (i + 1) & mask;
  }
}

/** Registers a stream context under its root slot (idempotent). */
export function addStream(id: u32, root: u32): void {
  if (id == 0 || findStream(id) != 0) return;
  if ((count + 1) * 10 > cap * 7) grow();
  place(tab, cap - 1, id, root == NO_ROOT ? 0 : rootIdAt(root), <u8>root, KIND_UNKNOWN, L4_UNDECIDED);
  count++;
}

export function removeStream(id: u32): void {
  const s = findStream(id);
  if (s == 0) return;
  const mask = cap - 1;
  let hole = <u32>((s - tab) / SLOT);
  let j = hole;
  while (true) {
    j = (j + 1) & mask;
    const sj = slotAt(tab, j);
    const k = load<u32>(sj + S_ID);
    if (k == 0) break;
    const h = home(k, mask);
    // Move j into the hole when its home position is not cyclically in (hole, j].
    const between = hole <= j ? h > hole && h <= j : h > hole || h <= j;
    if (!between) {
      memory.copy(slotAt(tab, hole), sj, SLOT);
      hole = j;
    }
  }
  memory.fill(slotAt(tab, hole), 0, SLOT);
  count--;
}

/** The slot of the root that created the stream, or NO_ROOT when that root is gone. */
export function streamRoot(s: usize): u32 {
  if (s == 0) return NO_ROOT;
  const slot = <u32>load<u8>(s + S_ROOT);
  return liveRoot(slot, load<u32>(s + S_ROOT_ID)) ? slot : NO_ROOT;
}

export function streamState(s: usize): u8 {
  return load<u8>(s + S_STATE);
}

export function setStreamState(s: usize, state: u8): void {
  store<u8>(s + S_STATE, state);
}

export function setStreamKind(s: usize, kind: u8): void {
  store<u8>(s + S_KIND, kind);
}

export function streamCount(): u32 {
  return count;
}
