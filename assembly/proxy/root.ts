// Root contexts: one per plugin configuration in this VM (Envoy shares a VM between the
// HTTP and the network filter, and between old and new configs during an update). Each
// root has its own settings, audit buffer and flush state. Root objects are allocated when
// a root context is created (configuration time, never per request) and reused after the
// root is deleted; their buffers are reused when big enough (the stub runtime never frees).

export const MAX_ROOTS: i32 = 32;
export const NO_ROOT: u32 = 0xff;

export const MODE_ENFORCE: i32 = 2;
export const MODE_OBSERVE: i32 = 1;

/** Bytes for the decoded configuration strings of one root. */
export const CFG_AREA_SIZE: usize = 16384;

export class Root {
  id: u32 = 0;
  active: bool = false;
  configured: bool = false;

  // ---- settings (configure) ----
  mode: i32 = MODE_ENFORCE;
  cfgArea: usize = 0;
  identityPtr: usize = 0;
  identityLen: i32 = 0;
  clusterPtr: usize = 0;
  clusterLen: i32 = 0;
  pathPtr: usize = 0;
  pathLen: i32 = 0;
  authorityPtr: usize = 0;
  authorityLen: i32 = 0;
  tokenPtr: usize = 0;
  tokenLen: i32 = 0;
  versionPtr: usize = 0;
  versionLen: i32 = 0;
  originPtr: usize = 0;
  originLen: i32 = 0;
  flushMs: u32 = 1000;
  timeoutMs: u32 = 5000;
  maxRecords: u32 = 10000;
  maxBufferBytes: u32 = 1048576;
  maxBatchRecords: u32 = 1000;
  maxBatchBytes: u32 = 262144;

  // ---- audit buffer: binary decision records, oldest first ----
  pbuf: usize = 0;
  pcap: usize = 0;
  pused: usize = 0;
  pcount: u32 = 0;
  body: usize = 0;
  bodyCap: usize = 0;
  inflightToken: u32 = 0;
  inflightCount: u32 = 0;
  inflightBytes: usize = 0;
  /** on_done returned false: finish the last flush, then call proxy_done. */
  doneRequested: bool = false;

  /** Clears per-configuration state; keeps the buffers for reuse. */
  reset(id: u32): void {
    this.id = id;
    this.active = true;
    this.configured = false;
    this.mode = MODE_ENFORCE;
    this.identityLen = 0;
    this.clusterLen = 0;
    this.pathLen = 0;
    this.authorityLen = 0;
    this.tokenLen = 0;
    this.versionLen = 0;
    this.originLen = 0;
    this.pused = 0;
    this.pcount = 0;
    this.inflightToken = 0;
    this.inflightCount = 0;
    this.inflightBytes = 0;
    this.doneRequested = false;
  }

  auditEnabled(): bool {
    return this.clusterLen > 0;
  }
}

let roots: StaticArray<Root | null> | null = null;

function table(): StaticArray<Root | null> {
  let t = roots;
  if (t === null) {
    t = new StaticArray<Root | null>(MAX_ROOTS);
    roots = t;
  }
  return t;
}

/** Slot index of the active root with this context id, or NO_ROOT. */
export function findRoot(id: u32): u32 {
  const t = table();
  for (let i = 0; i < MAX_ROOTS; i++) {
    const r = unchecked(t[i]);
    if (r !== null && r.active && r.id == id) return <u32>i;
  }
  return NO_ROOT;
}

/** Creates (or, idempotently, finds) the root for a context id; NO_ROOT when all slots are taken. */
export function createRoot(id: u32): u32 {
  const existing = findRoot(id);
  if (existing != NO_ROOT) return existing;
  const t = table();
  for (let i = 0; i < MAX_ROOTS; i++) {
    let r = unchecked(t[i]);
    if (r === null) {
      r = new Root();
      unchecked((t[i] = r));
    }
    if (!r.active) {
      r.reset(id);
      if (r.cfgArea == 0) r.cfgArea = heap.alloc(CFG_AREA_SIZE);
      return <u32>i;
    }
  }
  return NO_ROOT;
}

export function rootAt(slot: u32): Root {
  return changetype<Root>(unchecked(table()[<i32>slot]));
}

export function releaseRoot(slot: u32): void {
  rootAt(slot).active = false;
}

/** True when slot i holds an active root. */
export function findRootSlotActive(slot: u32): bool {
  const r = unchecked(table()[<i32>slot]);
  return r !== null && r.active;
}
