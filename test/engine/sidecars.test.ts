// The registry of sidecar versions (host/engine/sidecars.ts) on a clock the test moves:
// states against the active version, the window, and the bound on origins.
import { describe, expect, it } from "vitest";
import { SidecarRegistry } from "../../host/engine/sidecars.js";

const OLD = `sha256:${"1".repeat(64)}`;
const NEW = `sha256:${"2".repeat(64)}`;

function registry(activeSinceMs: number) {
  const clock = { now: activeSinceMs };
  const reg = new SidecarRegistry({ active: () => ({ version: NEW, sinceMs: activeSinceMs }), windowMs: 600_000, staleMs: 60_000, maxOrigins: 3, now: () => clock.now });
  return { reg, clock };
}

const rec = (origin: string, version: string, ms: number) => ({ origin, policy_version: version, timestamp: new Date(ms).toISOString() });

describe("SidecarRegistry", () => {
  it("tells converged, behind, stale and idle sidecars apart by their newest record", () => {
    const t0 = Date.parse("2026-03-01T10:00:00Z");
    const { reg, clock } = registry(t0);
    clock.now = t0 + 120_000;
    reg.observe([
      rec("envoy/a", OLD, t0 - 1000),
      rec("envoy/a", NEW, t0 + 500),
      rec("envoy/b", OLD, t0 + 10_000),
      rec("envoy/c", OLD, t0 + 90_000),
      rec("envoy/d", OLD, t0 - 5000),
    ]);
    const snap = reg.snapshot();
    // maxOrigins 3: "envoy/a", heard first, went.
    expect(snap.sidecars.map((s) => [s.origin, s.state, s.stale])).toEqual([
      ["envoy/b", "behind", false],
      ["envoy/c", "stale", true],
      ["envoy/d", "idle", false],
    ]);
    expect(snap.counts).toEqual({ converged: 0, behind: 1, stale: 1, idle: 1 });
    expect(snap.by_version).toEqual({ [OLD]: 3 });
    reg.observe([rec("envoy/b", NEW, t0 + 100_000)]);
    const b = reg.snapshot().sidecars.find((s) => s.origin === "envoy/b")!;
    expect(b).toMatchObject({ state: "converged", current_version: NEW });
    expect(b.versions.map((v) => [v.policy_version, v.records])).toEqual([
      [NEW, 1],
      [OLD, 1],
    ]);
  });

  it("forgets what falls out of the window, and never dates a record after now", () => {
    const t0 = Date.parse("2026-03-01T10:00:00Z");
    const { reg, clock } = registry(t0);
    clock.now = t0;
    reg.observe([rec("envoy/x", NEW, t0 + 3_600_000)]);
    expect(reg.snapshot().sidecars[0]!.last_decision).toBe(new Date(t0).toISOString());
    clock.now = t0 + 700_000;
    expect(reg.snapshot().sidecars).toEqual([]);
    // Records older than the window are not taken at all.
    reg.observe([rec("envoy/y", NEW, t0)]);
    expect(reg.snapshot().sidecars).toEqual([]);
  });
});
