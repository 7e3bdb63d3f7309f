// The policy image slots of a VM that receives images at run time (policy sync). Two slots:
// the active one, read by every evaluation, and the other, where the next image is written
// and checked. A slot grows only when an image is larger than it (to 1.5 x its size,
// rounded to 64 KiB; the old region is abandoned, the stub runtime never frees), so any
// number of swaps costs at most a few times the largest image. The image the linker placed
// in the module is slot 0 to begin with. The version an image belongs to is kept beside it
// (decision records carry it).
import { installImage, isReady, linkedImageLen, linkedImagePtr } from "./boot";

/** Longest version string kept (`sha256:<64 hex>` is 71). */
export const MAX_VERSION_BYTES: usize = 256;

const GRAIN: usize = 65536;

let ptr0: usize = 0;
let cap0: usize = 0;
let ptr1: usize = 0;
let cap1: usize = 0;
/** The slot evaluations read: 0 or 1 (slot 0 holds the linked image until the first swap). */
let activeSlot: i32 = 0;
let initialised: bool = false;
let swaps: u32 = 0;

const VERSION: usize = memory.data(<i32>MAX_VERSION_BYTES, 8);
let versionLen: usize = 0;

function init(): void {
  if (initialised) return;
  initialised = true;
  ptr0 = linkedImagePtr();
  cap0 = linkedImageLen();
}

/**
 * Room for an image of `len` bytes in the slot evaluations do not read. The bytes there may
 * be overwritten freely: only install() makes them visible.
 */
export function stagingArea(len: usize): usize {
  init();
  if (activeSlot == 0 || !isReady()) {
    if (cap1 < len) {
      cap1 = grow(cap1, len);
      ptr1 = heap.alloc(cap1);
    }
    return ptr1;
  }
  if (cap0 < len) {
    cap0 = grow(cap0, len);
    ptr0 = heap.alloc(cap0);
  }
  return ptr0;
}

function grow(had: usize, need: usize): usize {
  let n = had + (had >> 1);
  if (n < need) n = need;
  return (n + GRAIN - 1) & ~(GRAIN - 1);
}

/**
 * Makes the checked image at `at` (the staging area) the active one, with its version.
 * Runs inside one callback; requests are decided in theirs, so each sees one image.
 */
export function install(at: usize, version: usize, vlen: usize): void {
  init();
  activeSlot = at == ptr1 ? 1 : 0;
  installImage(at);
  const n = vlen < MAX_VERSION_BYTES ? vlen : MAX_VERSION_BYTES;
  memory.copy(VERSION, version, n);
  versionLen = n;
  swaps++;
}

/** The version of the installed image; 0 bytes until the first install (the configured one applies). */
export function imageVersionPtr(): usize {
  return VERSION;
}

export function imageVersionLen(): usize {
  return versionLen;
}

export function imageSwaps(): u32 {
  return swaps;
}
