// The agent's Prometheus metrics. zt_wireguard_peer_up{cluster} is the seed's; the engine does
// not export it (it sees no tunnel): the agent in each gateway pod does, from the device itself.
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { Observation } from "./status.js";

export type ReconcileResult = "applied" | "unchanged" | "refused" | "failed";

export interface MeshMetrics {
  readonly registry: Registry;
  update(o: Observation): void;
  reconciled(result: ReconcileResult): void;
  documentValid(valid: boolean): void;
}

export function createMeshMetrics(opts: { processMetrics?: boolean } = {}): MeshMetrics {
  const registry = new Registry();
  if (opts.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // Gauges named *_total fail `promtool check metrics` (as in host/metrics).
    for (const n of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) registry.removeSingleMetric(n);
  }
  const r = [registry];
  const up = new Gauge({ name: "zt_wireguard_peer_up", help: "WireGuard tunnel to the peer cluster is up: 1 while its latest handshake is younger than the bound (default 180 s), else 0", labelNames: ["cluster"] as const, registers: r });
  const age = new Gauge({ name: "zt_wireguard_latest_handshake_age_seconds", help: "Seconds since the latest handshake with the peer cluster (+Inf: none yet)", labelNames: ["cluster"] as const, registers: r });
  const rx = new Counter({ name: "zt_wireguard_peer_receive_bytes_total", help: "Bytes received from the peer cluster (resets when the peer's key rotates)", labelNames: ["cluster"] as const, registers: r });
  const tx = new Counter({ name: "zt_wireguard_peer_transmit_bytes_total", help: "Bytes sent to the peer cluster (resets when the peer's key rotates)", labelNames: ["cluster"] as const, registers: r });
  const keyAge = new Gauge({ name: "zt_wireguard_key_age_seconds", help: "Age of each cluster's gateway key pair, from the mesh document's keyCreated (rotate every 90 days)", labelNames: ["cluster"] as const, registers: r });
  const iface = new Gauge({ name: "zt_wireguard_interface_up", help: "The WireGuard interface exists (1) or not (0)", registers: r });
  const reconciles = new Counter({ name: "zt_mesh_reconciles_total", help: "Reconciliations of the interface with the mesh document, by result", labelNames: ["result"] as const, registers: r });
  for (const k of ["applied", "unchanged", "refused", "failed"] as const) reconciles.inc({ result: k }, 0);
  const valid = new Gauge({ name: "zt_mesh_document_valid", help: "The mesh document on disk is valid (1) or refused (0: the last valid one keeps serving)", registers: r });
  return {
    registry,
    update(o) {
      up.reset();
      age.reset();
      rx.reset();
      tx.reset();
      keyAge.reset();
      for (const p of o.peers) {
        up.set({ cluster: p.cluster }, p.up ? 1 : 0);
        age.set({ cluster: p.cluster }, p.handshakeAgeSeconds);
        rx.inc({ cluster: p.cluster }, p.rxBytes);
        tx.inc({ cluster: p.cluster }, p.txBytes);
      }
      for (const k of o.keyAges) keyAge.set({ cluster: k.cluster }, k.seconds);
      iface.set(o.interfaceUp ? 1 : 0);
    },
    reconciled: (result) => reconciles.inc({ result }),
    documentValid: (v) => valid.set(v ? 1 : 0),
  };
}
