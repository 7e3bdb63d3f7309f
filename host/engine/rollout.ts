// Which decisions this replica enforces: the shared rollout settings (global mode,
// per-destination modes, canaries) on top of the policies' own `spec.rollout` and ZT_MODE.
// For a service or agent request to destination D, the first that applies wins:
//   1. a canary entry matching D: enforce on the N replicas chosen for it, observe elsewhere;
//   2. per-destination entries matching D (enforce wins when several match);
//   3. the policy's spec.rollout for D (decided by the module);
//   4. the settings' global mode; 5. ZT_MODE.
// Operator requests follow 4-5. Canary replicas are chosen by rendezvous hashing over the live
// replica set: every replica computes the same choice from the same set, and a replica joining
// or leaving moves as few roles as possible.
import { createHash } from "node:crypto";
import type { RolloutMode } from "../../compiler/model.js";
import { parseSpiffeId, parseSpiffePattern, patternMatches, type SpiffePattern } from "../../compiler/spiffe.js";
import { type CanaryEntry, DEFAULT_ROLLOUT, type DestinationMode, type RolloutSettings } from "../store/types.js";

/** The replicas that enforce `destination`'s canary: the `n` with the lowest hash of (destination, replica). */
export function canaryReplicas(destination: string, live: readonly string[], n: number): string[] {
  const score = (id: string): string => createHash("sha256").update(destination).update("\0").update(id).digest("hex");
  return [...new Set(live)]
    .map((id) => ({ id, s: score(id) }))
    .sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : a.id < b.id ? -1 : 1))
    .slice(0, Math.max(0, n))
    .map((x) => x.id);
}

interface CompiledCanary {
  pattern: SpiffePattern;
  destination: string;
  replicas: number;
  chosen: string[];
  here: boolean;
}

const CACHE_MAX = 4096;

export class RolloutView {
  private settings: RolloutSettings = DEFAULT_ROLLOUT;
  private destinations: Array<{ pattern: SpiffePattern; mode: RolloutMode }> = [];
  private canaries: CompiledCanary[] = [];
  private live: string[];
  /** Destination -> the settings' override (null: none applies), per settings and live set. */
  private cache = new Map<string, RolloutMode | null>();

  constructor(
    private readonly envMode: RolloutMode,
    readonly replicaId: string,
  ) {
    this.live = [replicaId];
  }

  /** The settings in force (from the shared state). */
  current(): RolloutSettings {
    return this.settings;
  }

  apply(settings: RolloutSettings): void {
    this.settings = settings;
    this.destinations = settings.destinations.flatMap((d) => {
      const p = parseSpiffePattern(d.destination);
      return p.ok ? [{ pattern: p.value, mode: d.mode }] : [];
    });
    this.recompute();
  }

  /** The replicas heard from recently (this one included); returns true when this replica's canary roles changed. */
  setLive(ids: readonly string[]): boolean {
    const next = [...new Set([...ids, this.replicaId])].sort();
    if (next.length === this.live.length && next.every((id, i) => id === this.live[i])) return false;
    const before = this.canaryRoles().join("\n");
    this.live = next;
    this.recompute();
    return before !== this.canaryRoles().join("\n");
  }

  liveReplicas(): readonly string[] {
    return this.live;
  }

  /** The global mode: the settings', else ZT_MODE. */
  global(): RolloutMode {
    return this.settings.mode ?? this.envMode;
  }

  /** Hot path: the mode of a service or agent decision to `destination`, given the policy's own rollout for it. */
  serviceMode(destination: string, fromPolicy: RolloutMode | null): RolloutMode {
    if (this.canaries.length === 0 && this.destinations.length === 0) return fromPolicy ?? this.global();
    let o = this.cache.get(destination);
    if (o === undefined) {
      o = this.override(destination);
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(destination, o);
    }
    return o ?? fromPolicy ?? this.global();
  }

  /** Canary destinations this replica enforces. */
  canaryRoles(): string[] {
    return this.canaries.filter((c) => c.here).map((c) => c.destination);
  }

  /** The canaries with the replicas chosen for each (GET /v1/rollout). */
  canaryAssignments(): Array<{ destination: string; replicas: number; enforcing: string[]; enforced_here: boolean }> {
    return this.canaries.map((c) => ({ destination: c.destination, replicas: c.replicas, enforcing: c.chosen, enforced_here: c.here }));
  }

  private recompute(): void {
    this.canaries = this.settings.canary.flatMap((c) => {
      const p = parseSpiffePattern(c.destination);
      if (!p.ok) return [];
      const chosen = canaryReplicas(c.destination, this.live, c.replicas);
      return [{ pattern: p.value, destination: c.destination, replicas: c.replicas, chosen, here: chosen.includes(this.replicaId) }];
    });
    this.cache = new Map();
  }

  private override(destination: string): RolloutMode | null {
    const id = parseSpiffeId(destination);
    if (!id.ok) return null;
    for (const c of this.canaries) if (patternMatches(c.pattern, id.value)) return c.here ? "enforce" : "observe";
    let found: RolloutMode | null = null;
    for (const d of this.destinations) {
      if (!patternMatches(d.pattern, id.value)) continue;
      if (d.mode === "enforce") return "enforce";
      found = d.mode;
    }
    return found;
  }
}

export type RolloutInput = { mode: RolloutMode | null; destinations: DestinationMode[]; canary: CanaryEntry[] };

type Problem = { ok: false; path: string; message: string };
type Parsed<T> = { ok: true; value: T } | Problem;

const MAX_ENTRIES = 1000;

/** An optional list of entries, each an object with exactly the `allowed` keys, each read by `read`. */
function entries<T>(o: Record<string, unknown>, key: string, allowed: readonly string[], read: (e: Record<string, unknown>, at: string) => Parsed<T>): Parsed<T[]> {
  const x = o[key];
  if (x === undefined) return { ok: true, value: [] };
  if (!Array.isArray(x)) return { ok: false, path: `$.${key}`, message: "expected a list" };
  if (x.length > MAX_ENTRIES) return { ok: false, path: `$.${key}`, message: `at most ${MAX_ENTRIES} entries` };
  const out: T[] = [];
  for (let i = 0; i < x.length; i++) {
    const at = `$.${key}[${i}]`;
    const e: unknown = x[i];
    if (typeof e !== "object" || e === null || Array.isArray(e)) return { ok: false, path: at, message: "expected an object" };
    for (const k of Object.keys(e)) if (!allowed.includes(k)) return { ok: false, path: `${at}.${k}`, message: `unknown field (allowed: ${allowed.join(", ")})` };
    const r = read(e as Record<string, unknown>, at);
    if (!r.ok) return r;
    out.push(r.value);
  }
  return { ok: true, value: out };
}

function destinationPattern(x: unknown, path: string): Parsed<string> {
  if (typeof x !== "string") return { ok: false, path, message: "expected a SPIFFE ID pattern" };
  const p = parseSpiffePattern(x);
  return p.ok ? { ok: true, value: x } : { ok: false, path, message: `invalid SPIFFE pattern: ${p.error}` };
}

function destinationMode(e: Record<string, unknown>, at: string): Parsed<DestinationMode> {
  const d = destinationPattern(e.destination, `${at}.destination`);
  if (!d.ok) return d;
  if (e.mode !== "enforce" && e.mode !== "observe") return { ok: false, path: `${at}.mode`, message: 'expected "enforce" or "observe"' };
  return { ok: true, value: { destination: d.value, mode: e.mode } };
}

function canaryEntry(e: Record<string, unknown>, at: string): Parsed<CanaryEntry> {
  const d = destinationPattern(e.destination, `${at}.destination`);
  if (!d.ok) return d;
  const n = e.replicas;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 1000) return { ok: false, path: `${at}.replicas`, message: "expected a whole number of replicas, 1..1000" };
  return { ok: true, value: { destination: d.value, replicas: n } };
}

/** Checks a PUT /v1/rollout body; errors carry the JSON path. */
export function parseRolloutInput(v: unknown): Parsed<RolloutInput> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { ok: false, path: "$", message: "expected an object with mode, destinations and canary" };
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== "mode" && k !== "destinations" && k !== "canary") return { ok: false, path: `$.${k}`, message: "unknown field (allowed: mode, destinations, canary)" };
  const mode = o.mode === undefined ? null : o.mode;
  if (mode !== null && mode !== "enforce" && mode !== "observe") return { ok: false, path: "$.mode", message: 'expected "enforce", "observe" or null (ZT_MODE)' };
  const destinations = entries(o, "destinations", ["destination", "mode"], destinationMode);
  if (!destinations.ok) return destinations;
  const canary = entries(o, "canary", ["destination", "replicas"], canaryEntry);
  if (!canary.ok) return canary;
  return { ok: true, value: { mode, destinations: destinations.value, canary: canary.value } };
}
