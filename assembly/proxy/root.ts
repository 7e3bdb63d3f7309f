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
  /** Longest wait between two ingest attempts after failures (exponential backoff cap). */
  retryMaxMs: u32 = 60000;
  /** How long a removed root keeps trying to ship what it holds before it gives up. */
  drainTimeoutMs: u32 = 60000;

  // ---- policy sync settings (sync.ts) ----
  syncClusterPtr: usize = 0;
  syncClusterLen: i32 = 0;
  syncPathPtr: usize = 0;
  syncPathLen: i32 = 0;
  syncAuthorityPtr: usize = 0;
  syncAuthorityLen: i32 = 0;
  syncTokenPtr: usize = 0;
  syncTokenLen: i32 = 0;
  syncWaitMs: u32 = 30000;
  syncRetryMs: u32 = 1000;
  syncRetryMaxMs: u32 = 60000;
  syncMaxImageBytes: u32 = 67108864;
  /** The tick period asked of the host, and when the audit buffer is next due (ticks may come faster). */
  tickMs: u32 = 0;
  nextFlushNs: u64 = 0;
  /** Ticks run at SYNC_START_TICK_MS until the first poll leaves, then at tickMs. */
  fastStart: bool = false;

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
  /** When on_done came, and when the root stops trying (host clock, ns). */
  drainSinceNs: u64 = 0;
  drainDeadlineNs: u64 = 0;
  /** Ingest failures in a row, and the earliest time of the next attempt. */
  failures: u32 = 0;
  retryAtNs: u64 = 0;
  /** The policy poll in flight (proxy_http_call token, 0 = none), failures in a row, next attempt. */
  syncToken: u32 = 0;
  syncFailures: u32 = 0;
  syncRetryAtNs: u64 = 0;

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
    this.drainSinceNs = 0;
    this.drainDeadlineNs = 0;
    this.failures = 0;
    this.retryAtNs = 0;
    this.syncClusterLen = 0;
    this.syncPathLen = 0;
    this.syncAuthorityLen = 0;
    this.syncTokenLen = 0;
    this.syncToken = 0;
    this.syncFailures = 0;
    this.syncRetryAtNs = 0;
    this.tickMs = 0;
    this.nextFlushNs = 0;
    this.fastStart = false;
  }

  auditEnabled(): bool {
    return this.clusterLen > 0;
  }

  syncEnabled(): bool {
    return this.syncClusterLen > 0;
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

/** The context id of the root in `slot` (0 when the slot is empty). */
export function rootIdAt(slot: u32): u32 {
  const r = unchecked(table()[<i32>slot]);
  return r !== null && r.active ? r.id : 0;
}

/** True when `slot` still holds the root with context id `id` (it was not deleted, its slot not reused). */
export function liveRoot(slot: u32, id: u32): bool {
  if (slot >= <u32>MAX_ROOTS || id == 0) return false;
  const r = unchecked(table()[<i32>slot]);
  return r !== null && r.active && r.id == id;
}

/** The draining root (on_done answered, not yet deleted) that has drained longest, or NO_ROOT. */
export function oldestDraining(): u32 {
  const t = table();
  let best = NO_ROOT;
  let since: u64 = 0xffffffffffffffff;
  for (let i = 0; i < MAX_ROOTS; i++) {
    const r = unchecked(t[i]);
    if (r !== null && r.active && r.doneRequested && r.drainSinceNs < since) {
      best = <u32>i;
      since = r.drainSinceNs;
    }
  }
  return best;
}

/** True when slot i holds an active root. */
export function findRootSlotActive(slot: u32): bool {
  const r = unchecked(table()[<i32>slot]);
  return r !== null && r.active;
}
