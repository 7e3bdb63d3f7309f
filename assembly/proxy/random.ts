// Random bytes from the host (WASI random_get, which Envoy provides), drawn in 4 KiB blocks
// so that a decision id costs one memory copy, not a host call.
import { random_get } from "./host";

const POOL_SIZE: usize = 4096;
let pool: usize = 0;
let poolPos: usize = POOL_SIZE;

/** Copies n (<= 16) random bytes to dst. */
export function randomBytes(dst: usize, n: usize): void {
  if (pool == 0) pool = heap.alloc(POOL_SIZE);
  if (poolPos + n > POOL_SIZE) {
    random_get(pool, POOL_SIZE);
    poolPos = 0;
  }
  memory.copy(dst, pool + poolPos, n);
  poolPos += n;
}

const WORD: usize = memory.data(4, 4);

export function randomU32(): u32 {
  randomBytes(WORD, 4);
  return load<u32>(WORD);
}
