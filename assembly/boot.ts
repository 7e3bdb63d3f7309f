// Start-up: find the policy image the linker placed in memory and reserve it in the heap,
// so that no allocation can ever overwrite it. Imported first by index.ts so that this runs
// before any other top-level code allocates.
import { IMAGE_HEADER_SIZE, IMAGE_MAGIC, FORMAT_VERSION, H_MAGIC, H_TOTAL_LEN, H_VERSION, LH_IMAGE_LEN, LH_IMAGE_PTR, LH_MAGIC, LINK_HEADER_ADDR, LINK_MAGIC } from "./layout";
import { initBuffers } from "./memory";
import { initCharClasses } from "./spiffe";

let imageBase: usize = 0;
let ready: bool = false;
let booted: bool = false;
/** Where the linker placed the image and its length (0, 0 without one): reusable as an image slot. */
let linkedPtr: usize = 0;
let linkedLen: usize = 0;

function reserveImage(): void {
  const hdr: usize = LINK_HEADER_ADDR;
  if (load<u32>(hdr + LH_MAGIC) != <u32>LINK_MAGIC) return; // a bare evaluator: not ready, denies everything
  const ptr = <usize>load<u32>(hdr + LH_IMAGE_PTR);
  const len = <usize>load<u32>(hdr + LH_IMAGE_LEN);
  // The stub allocator hands out increasing addresses: claim everything up to the image end.
  const first = heap.alloc(1);
  if (first + 16 > ptr) unreachable(); // the linker left too small a gap
  heap.alloc(ptr + len - first);
  linkedPtr = ptr;
  linkedLen = len;
  if (len < <usize>IMAGE_HEADER_SIZE) return;
  if (load<u32>(ptr + H_MAGIC) != <u32>IMAGE_MAGIC) return;
  if (load<u32>(ptr + H_VERSION) != <u32>FORMAT_VERSION) return;
  if (<usize>load<u32>(ptr + H_TOTAL_LEN) != len) return;
  imageBase = ptr;
  ready = true;
}

/** Idempotent: hosts may run start-up more than once (Envoy runs it on a throwaway clone too). */
export function boot(): void {
  if (booted) return;
  booted = true;
  reserveImage();
  initBuffers();
  initCharClasses();
}

boot();

export function image(): usize {
  return imageBase;
}

export function isReady(): bool {
  return ready;
}

export function linkedImagePtr(): usize {
  return linkedPtr;
}

export function linkedImageLen(): usize {
  return linkedLen;
}

/**
 * Makes the image at `ptr` the one every evaluation reads, from the next read of image()
 * on. Called between callbacks only (assembly/image.ts), so a decision never sees two.
 */
export function installImage(ptr: usize): void {
  imageBase = ptr;
  ready = true;
}
