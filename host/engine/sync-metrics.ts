// Metrics of the policy sync (docs/envoy.md): held long polls and how they were answered,
// and which versions the sidecars decide with (from host/engine/sidecars.ts). Read at
// scrape time; labels are bounded: states are four, versions are those seen in the window
// (at most `maxVersions` of them, the most common first).
import { Counter, Gauge, type Registry } from "prom-client";
import type { PolicyWatch } from "./policy-watch.js";
import type { SidecarRegistry, SidecarState } from "./sidecars.js";

export interface SyncMetrics {
  /** A GET /v1/policy-image answered with `status`. */
  answered(status: 200 | 304): void;
}

export function registerSyncMetrics(registry: Registry, watch: PolicyWatch, sidecars: SidecarRegistry, maxVersions = 20): SyncMetrics {
  new Gauge({
    name: "zt_policy_image_polls_waiting",
    help: "Long polls on GET /v1/policy-image held right now (sidecar VMs waiting for a new policy version)",
    registers: [registry],
    collect() {
      this.set(watch.waiting);
    },
  });
  const answers = new Counter({ name: "zt_policy_image_responses_total", help: "GET /v1/policy-image answers: 200 (an image sent) or 304 (the wait ended, nothing new)", labelNames: ["status"] as const, registers: [registry] });
  for (const s of ["200", "304"]) answers.inc({ status: s }, 0);
  new Gauge({
    name: "zt_sidecars",
    help: "Sidecar origins seen in the recent window, by how their newest decision record compares with the active policy version",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const { counts } = sidecars.summary();
      for (const state of Object.keys(counts) as SidecarState[]) this.set({ state }, counts[state]);
    },
  });
  new Gauge({
    name: "zt_sidecar_policy_versions",
    help: "Sidecar origins by the policy version of their newest decision record (recent window)",
    labelNames: ["policy_version"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const { byVersion } = sidecars.summary();
      [...byVersion].sort((a, b) => b[1] - a[1]).slice(0, maxVersions).forEach(([policy_version, n]) => this.set({ policy_version }, n));
    },
  });
  return { answered: (status) => answers.inc({ status: String(status) }) };
}
