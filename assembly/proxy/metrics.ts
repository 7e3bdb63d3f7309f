// The filter's Envoy metrics (proxy_define_metric). Envoy exposes them under the
// "wasmcustom." prefix, e.g. envoy_wasmcustom_zt_filter_allow in Prometheus format.
// Defined once per VM (the HTTP and the network filter share the counters).
import { METRIC_COUNTER, METRIC_GAUGE, OK, proxy_define_metric, proxy_increment_metric, proxy_record_metric } from "./host";
import { MAX_ROOTS, rootAt, findRootSlotActive } from "./root";
import { arenaAlloc } from "../memory";
import { asciiCopy } from "./bytes";

/** Decisions that allowed the request. */
export const M_ALLOW: i32 = 0;
/** Denies that were enforced (403 sent or connection closed). */
export const M_DENY: i32 = 1;
/** Would-be denies in observe mode (traffic passed, decision recorded). */
export const M_OBSERVE_DENY: i32 = 2;
/** Requests/connections whose peer presented no URI SAN. */
export const M_NO_PEER_ID: i32 = 3;
/** Records the engine accepted. */
export const M_AUDIT_SENT: i32 = 4;
/** Records lost: buffer full, batch rejected by the engine, or not representable. */
export const M_AUDIT_DROPPED: i32 = 5;
/** Flushes that failed and will be retried (engine unreachable, 5xx...). */
export const M_AUDIT_FLUSH_FAILED: i32 = 6;
/** Gauge: records waiting to be shipped, all roots of this VM. */
export const M_AUDIT_BUFFERED: i32 = 7;
/** Policy images installed by the sync. */
export const M_SYNC_SWAPS: i32 = 8;
/** Policy images refused (failed verification, unknown format, too large): the old one keeps deciding. */
export const M_SYNC_REFUSED: i32 = 9;
/** Policy polls that failed (engine unreachable, 5xx, 401...): retried after a backoff. */
export const M_SYNC_FAILURES: i32 = 10;
/** Gauge: seconds since the engine last confirmed this VM's image is the active one. */
export const M_SYNC_IMAGE_AGE: i32 = 11;
const METRIC_COUNT: i32 = 12;

const IDS: usize = memory.data(METRIC_COUNT * 4, 4);
const ID_SLOT: usize = memory.data(4, 4);
let defined: bool = false;

function define(idx: i32, type: i32, name: string): void {
  const p = arenaAlloc(<usize>name.length);
  asciiCopy(p, name);
  store<u32>(ID_SLOT, 0xffffffff);
  const rc = proxy_define_metric(type, p, <usize>name.length, ID_SLOT);
  store<u32>(IDS + <usize>idx * 4, rc == OK ? load<u32>(ID_SLOT) : 0xffffffff);
}

/** Idempotent; called from proxy_on_configure (metrics cannot be defined during start). */
export function defineMetrics(): void {
  if (defined) return;
  defined = true;
  define(M_ALLOW, METRIC_COUNTER, "zt.filter.allow");
  define(M_DENY, METRIC_COUNTER, "zt.filter.deny");
  define(M_OBSERVE_DENY, METRIC_COUNTER, "zt.filter.observe_deny");
  define(M_NO_PEER_ID, METRIC_COUNTER, "zt.filter.no_peer_identity");
  define(M_AUDIT_SENT, METRIC_COUNTER, "zt.audit.sent");
  define(M_AUDIT_DROPPED, METRIC_COUNTER, "zt.audit.dropped");
  define(M_AUDIT_FLUSH_FAILED, METRIC_COUNTER, "zt.audit.flush_failed");
  define(M_AUDIT_BUFFERED, METRIC_GAUGE, "zt.audit.buffered");
  define(M_SYNC_SWAPS, METRIC_COUNTER, "zt.sync.swaps");
  define(M_SYNC_REFUSED, METRIC_COUNTER, "zt.sync.refused");
  define(M_SYNC_FAILURES, METRIC_COUNTER, "zt.sync.failures");
  define(M_SYNC_IMAGE_AGE, METRIC_GAUGE, "zt.sync.image_age_seconds");
}

/** Sets a gauge. */
export function setGauge(idx: i32, v: u64): void {
  const id = load<u32>(IDS + <usize>idx * 4);
  if (!defined || id == 0xffffffff) return;
  proxy_record_metric(id, <i64>v);
}

export function countMetric(idx: i32, n: u64): void {
  const id = load<u32>(IDS + <usize>idx * 4);
  if (!defined || id == 0xffffffff) return;
  proxy_increment_metric(id, <i64>n);
}

export function updateBuffered(): void {
  const id = load<u32>(IDS + <usize>M_AUDIT_BUFFERED * 4);
  if (!defined || id == 0xffffffff) return;
  let total: u64 = 0;
  for (let i = 0; i < MAX_ROOTS; i++) {
    if (findRootSlotActive(<u32>i)) total += <u64>rootAt(<u32>i).pcount;
  }
  proxy_record_metric(id, <i64>total);
}
