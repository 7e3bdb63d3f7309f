// The API listener's own metrics, registered on the engine's registry: uploads the client
// abandoned, and how long the event loop (which serves the API and the health port alike)
// was held (event-loop.ts).
import { Counter, type Registry } from "prom-client";

export const ABORTED_METRIC = "zt_http_aborted_requests_total";

export interface HttpMetrics {
  /** A request whose body stopped arriving (the client closed the connection mid-upload). */
  aborted(): void;
}

/** Idempotent per registry: an engine may build its app more than once on one registry. */
export function httpMetrics(registry: Registry): HttpMetrics {
  const existing = registry.getSingleMetric(ABORTED_METRIC) as Counter | undefined;
  const aborted = existing ?? new Counter({ name: ABORTED_METRIC, help: "Requests whose body the client stopped sending (connection closed mid-upload); logged at debug only", registers: [registry] });
  return { aborted: () => aborted.inc() };
}
