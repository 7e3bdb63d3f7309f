// A removed plugin configuration (proxy_on_done on its root) ships what it still holds
// before it goes: it answers "not done", keeps flushing on its ticks and ingest answers with
// the usual backoff, and calls proxy_done when its buffer is empty, or gives up at
// drain_timeout_ms (counting the records it drops). When the root table is full, the root
// that has drained longest gives up at once, so configuration updates during an engine
// outage never exhaust the table.
import { LOG_WARN, proxy_done, proxy_set_effective_context } from "./host";
import { logNumber, nowNs } from "./bytes";
import { discardAll, flush } from "./audit";
import { NO_ROOT, Root, oldestDraining, releaseRoot, rootAt } from "./root";

/** proxy_on_done for a root: true when it is done at once, false when it drains first. */
export function startDrain(r: Root): bool {
  if (r.pcount > 0) flush(r);
  if (r.inflightToken == 0 && r.pcount == 0) return true;
  const now = nowNs();
  r.doneRequested = true;
  r.drainSinceNs = now;
  r.drainDeadlineNs = now + <u64>r.drainTimeoutMs * 1000000;
  return false;
}

/** One step of a draining root (its tick or an ingest answer): ship, finish or give up. */
export function drainStep(r: Root, slot: u32): void {
  if (r.inflightToken != 0) return; // wait for the answer (bounded by ingest_timeout_ms)
  if (r.pcount > 0 && nowNs() >= r.drainDeadlineNs) {
    giveUp(r);
    finish(slot);
    return;
  }
  if (r.pcount > 0) flush(r);
  if (r.inflightToken == 0 && r.pcount == 0) finish(slot);
}

function giveUp(r: Root): void {
  logNumber(LOG_WARN, "zt: a removed plugin configuration is giving up on the engine; records dropped: ", <u64>r.pcount);
  discardAll(r);
}

/** proxy_done for the current root; the slot is free from now on (on_delete finds nothing). */
function finish(slot: u32): void {
  proxy_done();
  releaseRoot(slot);
}

/**
 * Makes room in a full root table: the root draining longest gives up and is done. Returns
 * false when no root is draining (the table is full of live configurations).
 */
export function evictDraining(currentId: u32): bool {
  const slot = oldestDraining();
  if (slot == NO_ROOT) return false;
  const r = rootAt(slot);
  giveUp(r);
  // proxy_done acts on the current context: point it at the evicted root, then back.
  proxy_set_effective_context(r.id);
  proxy_done();
  proxy_set_effective_context(currentId);
  releaseRoot(slot);
  return true;
}
