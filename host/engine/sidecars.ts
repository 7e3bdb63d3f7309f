// Which sidecar runs what: from the decision records sidecars ship (POST /v1/audit/ingest),
// the policy versions each origin decided with over a recent window, and how its newest
// record compares with the version this engine runs. Served by GET /v1/sidecars and as
// metrics, so an operator can see a policy write converge across the fleet. Bounded: the
// window drops old entries, and past `maxOrigins` the origin heard from least recently goes.

export interface SidecarRecordView {
  readonly origin: string;
  readonly policy_version: string;
  readonly timestamp: string;
}

/**
 * converged: its newest record was decided by the active version. behind: by another one,
 * less than `staleMs` after the active version was activated. stale: by another one, later
 * than that. idle: no record since the active version was activated (nothing to tell).
 */
export type SidecarState = "converged" | "behind" | "stale" | "idle";

interface VersionSeen {
  records: number;
  firstMs: number;
  lastMs: number;
}

interface Origin {
  readonly versions: Map<string, VersionSeen>;
  newestMs: number;
  newestVersion: string;
  heardMs: number;
}

export interface SidecarView {
  origin: string;
  state: SidecarState;
  stale: boolean;
  /** The version of its newest record. */
  current_version: string;
  last_decision: string;
  last_heard: string;
  versions: Array<{ policy_version: string; records: number; first_seen: string; last_seen: string }>;
}

export interface SidecarsSnapshot {
  active_version: string | null;
  active_since: string | null;
  window_seconds: number;
  stale_after_seconds: number;
  counts: Record<SidecarState, number>;
  /** Origins by the version of their newest record. */
  by_version: Record<string, number>;
  sidecars: SidecarView[];
}

export interface SidecarRegistryOptions {
  /** The engine's active version and when it was activated (ms). */
  active: () => { version: string; sinceMs: number } | null;
  windowMs?: number;
  staleMs?: number;
  maxOrigins?: number;
  /** Versions kept per origin (newest first) within the window. */
  maxVersionsPerOrigin?: number;
  now?: () => number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class SidecarRegistry {
  private readonly origins = new Map<string, Origin>();
  readonly windowMs: number;
  readonly staleMs: number;
  private readonly maxOrigins: number;
  private readonly maxVersions: number;
  private readonly now: () => number;

  constructor(private readonly opts: SidecarRegistryOptions) {
    this.windowMs = opts.windowMs ?? 15 * 60_000;
    this.staleMs = opts.staleMs ?? 60_000;
    this.maxOrigins = opts.maxOrigins ?? 10_000;
    this.maxVersions = opts.maxVersionsPerOrigin ?? 16;
    this.now = opts.now ?? Date.now;
  }

  /** Records accepted by ingest. A record's time is its decision time, never later than now. */
  observe(records: readonly SidecarRecordView[]): void {
    const now = this.now();
    for (const r of records) {
      const parsed = Date.parse(r.timestamp);
      const at = Number.isFinite(parsed) ? Math.min(parsed, now) : now;
      if (at < now - this.windowMs) continue;
      let o = this.origins.get(r.origin);
      if (o === undefined) {
        o = { versions: new Map(), newestMs: -Infinity, newestVersion: r.policy_version, heardMs: now };
      } else this.origins.delete(r.origin); // re-inserted below: the Map's order is least recently heard first
      o.heardMs = now;
      this.origins.set(r.origin, o);
      const v = o.versions.get(r.policy_version);
      if (v === undefined) o.versions.set(r.policy_version, { records: 1, firstMs: at, lastMs: at });
      else {
        v.records++;
        if (at < v.firstMs) v.firstMs = at;
        if (at > v.lastMs) v.lastMs = at;
      }
      if (at >= o.newestMs) {
        o.newestMs = at;
        o.newestVersion = r.policy_version;
      }
      if (o.versions.size > this.maxVersions) this.dropOldestVersion(o);
    }
    while (this.origins.size > this.maxOrigins) this.origins.delete(this.origins.keys().next().value!);
  }

  private dropOldestVersion(o: Origin): void {
    let oldest: string | null = null;
    let at = Infinity;
    for (const [k, v] of o.versions) if (v.lastMs < at && k !== o.newestVersion) [oldest, at] = [k, v.lastMs];
    if (oldest !== null) o.versions.delete(oldest);
  }

  private prune(now: number): void {
    const horizon = now - this.windowMs;
    for (const [name, o] of this.origins) {
      for (const [k, v] of o.versions) if (v.lastMs < horizon) o.versions.delete(k);
      if (o.versions.size === 0) this.origins.delete(name);
    }
  }

  private stateOf(o: Origin, active: { version: string; sinceMs: number } | null): SidecarState {
    if (active === null) return "idle";
    if (o.newestVersion === active.version) return "converged";
    if (o.newestMs < active.sinceMs) return "idle";
    return o.newestMs - active.sinceMs > this.staleMs ? "stale" : "behind";
  }

  /** Counts by state and by the version of each origin's newest record (for metrics). */
  summary(): { counts: Record<SidecarState, number>; byVersion: Map<string, number> } {
    const now = this.now();
    this.prune(now);
    const active = this.opts.active();
    const counts: Record<SidecarState, number> = { converged: 0, behind: 0, stale: 0, idle: 0 };
    const byVersion = new Map<string, number>();
    for (const o of this.origins.values()) {
      counts[this.stateOf(o, active)]++;
      byVersion.set(o.newestVersion, (byVersion.get(o.newestVersion) ?? 0) + 1);
    }
    return { counts, byVersion };
  }

  snapshot(): SidecarsSnapshot {
    const { counts, byVersion } = this.summary();
    const active = this.opts.active();
    const sidecars: SidecarView[] = [];
    for (const [origin, o] of this.origins) {
      const state = this.stateOf(o, active);
      sidecars.push({
        origin,
        state,
        stale: state === "stale",
        current_version: o.newestVersion,
        last_decision: iso(o.newestMs),
        last_heard: iso(o.heardMs),
        versions: [...o.versions]
          .sort((a, b) => b[1].lastMs - a[1].lastMs)
          .map(([policy_version, v]) => ({ policy_version, records: v.records, first_seen: iso(v.firstMs), last_seen: iso(v.lastMs) })),
      });
    }
    sidecars.sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0));
    return {
      active_version: active?.version ?? null,
      active_since: active ? iso(active.sinceMs) : null,
      window_seconds: this.windowMs / 1000,
      stale_after_seconds: this.staleMs / 1000,
      counts,
      by_version: Object.fromEntries(byVersion),
      sidecars,
    };
  }
}
