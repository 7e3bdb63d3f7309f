// Identity metrics (HIP-0044 "Prometheus Metrics": zt_svid_rotations_total{service}).
import { Counter, Gauge, type Registry } from "prom-client";

export interface IdentityMetrics {
  /** Replacements of the serving SVID (the first SVID is not a rotation); label: its SPIFFE ID. */
  readonly svidRotations: Counter<"service">;
  /** notAfter of the serving SVID, Unix seconds: alert when it nears time() (rotation stuck). */
  readonly svidExpiry: Gauge<"service">;
  /** Agent JWT verifications by result: "ok" or the reject reason. */
  readonly jwtVerifications: Counter<"result">;
  /** API connections refused as callers (no valid X.509-SVID), by the rule they break; counted once per connection. */
  readonly peerRejections: Counter<"reason">;
}

/** Registers the identity metrics on `registry`; call once per registry. */
export function registerIdentityMetrics(registry: Registry): IdentityMetrics {
  return {
    svidRotations: new Counter({
      name: "zt_svid_rotations_total",
      help: "Times the engine's serving X.509-SVID was replaced in place",
      labelNames: ["service"],
      registers: [registry],
    }),
    svidExpiry: new Gauge({
      name: "zt_svid_expiry_timestamp_seconds",
      help: "Expiry (notAfter) of the engine's current serving X.509-SVID, Unix seconds",
      labelNames: ["service"],
      registers: [registry],
    }),
    jwtVerifications: new Counter({
      name: "zt_jwt_verifications_total",
      help: "Agent JWT verifications by result (ok or the reject reason)",
      labelNames: ["result"],
      registers: [registry],
    }),
    peerRejections: new Counter({
      name: "zt_peer_rejections_total",
      help: "API connections whose client certificate is not a valid X.509-SVID, by reason (once per connection)",
      labelNames: ["reason"],
      registers: [registry],
    }),
  };
}
