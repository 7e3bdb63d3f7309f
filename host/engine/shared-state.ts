// One truth for every replica: the policies, incidents and rollout settings of the shared
// state (host/store), applied to this replica's PolicyStore, IncidentStore and RolloutView.
//   - Writes: validate (a complete module is built first: 422 leaves the store untouched),
//     commit (the store checks If-Match against the latest committed version: 412), then apply
//     here before answering, so the replica that took the write already serves it.
//   - Change feed: a NOTIFY, a re-established feed and a periodic check (ZT_STATE_SYNC_INTERVAL_MS)
//     all lead to the same sync: read every change after the applied revision in one snapshot,
//     rebuild if a policy changed, swap. A replica that missed a notification converges at the
//     next check.
//   - Outage: the replica keeps serving what it has, reports itself stale, refuses writes (503),
//     and starts from its local hash-checked cache (store/cache.ts) if it restarts meanwhile.
//   - Heartbeats: each replica records what it serves (GET /v1/replicas) and reads the live set,
//     from which the canary replicas are chosen.
import { createHash } from "node:crypto";
import type { Diagnostic } from "../../compiler/diagnostics.js";
import type { RolloutMode } from "../../compiler/model.js";
import type { Logger } from "../common/logger.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import { type CachedState, ChangeFeed, type IncidentInput, type StateBackend, type StateCache, StoreUnavailableError } from "../store/index.js";
import { DEFAULT_ROLLOUT, type IncidentRecord, type PolicyVersion, type ReplicaRow, type ReplicaStatus, type RolloutSettings, type StateChanges } from "../store/types.js";
import { IncidentStore } from "./incidents.js";
import { type PolicyInfo, PolicyStore, type PolicyStoreOptions, type Prepared } from "./policy-store.js";
import { type RolloutInput, RolloutView } from "./rollout.js";

export interface SharedStateOptions {
  /** The shared state in PostgreSQL (closed by close()); null: policies come from files only and writes are refused (503). */
  backend: StateBackend | null;
  /** The local cache of the last good state (with a backend). */
  cache: StateCache | null;
  replicaId: string;
  /** Global mode when the settings set none (ZT_MODE). */
  envMode: RolloutMode;
  syncIntervalMs: number;
  heartbeatIntervalMs: number;
  policies: PolicyStoreOptions;
  log: Logger;
  metrics: EngineMetrics;
}

/** Why a write was refused, as the API answers it. */
export type WriteRefusal =
  | { ok: false; status: 503; code: "store_unavailable" | "no_state_store" | "build_unavailable"; message: string }
  | { ok: false; status: 422; code: "invalid_policy"; message: string; diagnostics: Diagnostic[] }
  | { ok: false; status: 409; code: "policy_from_file"; message: string; file: string }
  | { ok: false; status: 412; code: "precondition_failed"; message: string; current: { version: string; revision: number } | null }
  | { ok: false; status: 404; code: "policy_not_found" | "version_not_found" | "incident_not_found"; message: string }
  | { ok: false; status: 400; code: "not_a_version"; message: string };

/** A rollout write whose If-Match is not the current settings' revision. */
export interface RolloutConflict {
  ok: false;
  status: 412;
  code: "rollout_changed";
  message: string;
  settings: RolloutSettings;
}

export interface PolicyWriteOk {
  ok: true;
  created: boolean;
  /** The module serving after the change, and before it. */
  version: string;
  previousVersion: string | null;
  /** The policy as served now (null after a delete when no file defines the name). */
  info: PolicyInfo | null;
  /** The stored version written. */
  stored: PolicyVersion;
}

export type PolicyWriteResult = PolicyWriteOk | WriteRefusal;

export interface PolicyWriteOptions {
  /** If-Match: the sha256 (hex) the policy must currently have, or "*". */
  ifMatch?: string | null;
  /** If-None-Match: *: the policy must not exist yet. */
  ifNoneMatch?: boolean;
  author: string | null;
  message: string | null;
}

export interface StateStatus {
  /** False when the engine runs without a shared state (files only). */
  configured: boolean;
  replica: string;
  connected: boolean;
  /** Serving something other than the store's latest state, or unsure (no contact). */
  stale: boolean;
  /** The store revision applied here, and the store's own as last seen. */
  revision: number;
  store_revision: number | null;
  matched_at: string | null;
  seconds_since_match: number | null;
  /** Where the state served since start came from. */
  source: "store" | "cache" | "none";
  feed_listening: boolean;
  last_error: string | null;
}

/** One replica as GET /v1/replicas shows it. */
export interface ReplicaEntry extends ReplicaStatus {
  id: string;
  /** Not heard from for three heartbeat intervals. */
  stale: boolean;
  heartbeat_at: string;
  seconds_since_heartbeat: number;
  started_at: string;
  /** Has applied the store's latest revision (as this replica last saw it). */
  matches_store: boolean;
}

export interface ReplicaView {
  revision: number | null;
  stale_after_seconds: number;
  /** The live replicas serve one policy version. */
  agree: boolean;
  /** The distinct versions the live replicas serve. */
  versions: Array<string | null>;
  replicas: ReplicaEntry[];
}

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function unavailable(e: StoreUnavailableError): WriteRefusal {
  return { ok: false, status: 503, code: "store_unavailable", message: `${e.message}; the change was not made` };
}

const NO_STORE: WriteRefusal = { ok: false, status: 503, code: "no_state_store", message: "this engine runs without a shared state store: policies come from files only" };

export class SharedState {
  readonly incidents = new IncidentStore();
  readonly rollout: RolloutView;
  /** The store's latest API policies (what should serve); the PolicyStore holds what does. */
  private desired = new Map<string, PolicyVersion>();
  /** Each name's latest version number, deletions included (a write's version is the next one). */
  private latestSeq = new Map<string, number>();
  private applied = 0;
  private storeRev: number | null = null;
  private connected = false;
  private matchedAt: number | null = null;
  private lastError: string | null = null;
  private source: StateStatus["source"] = "none";
  private failedFingerprint: string | null = null;
  private feed: ChangeFeed | null = null;
  private feedListening = false;
  private queue: Promise<unknown> = Promise.resolve();
  private syncQueued = false;
  private timers: NodeJS.Timeout[] = [];
  private beating: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly startedAt = new Date().toISOString();

  private constructor(
    private readonly opts: SharedStateOptions,
    readonly policies: PolicyStore,
  ) {
    this.rollout = new RolloutView(opts.envMode, opts.replicaId);
  }

  /**
   * Loads the state (from the store, or from the local cache when the store is unreachable)
   * and builds the first module. Throws PolicyStoreError (policies do not validate) or
   * StartupError (the store is unreachable and there is no usable cache).
   */
  static async open(opts: SharedStateOptions): Promise<SharedState> {
    const { backend, cache, log } = opts;
    if (!backend) {
      const s = new SharedState(opts, await PolicyStore.open(opts.policies));
      s.registerMetrics();
      return s;
    }
    let changes: StateChanges | null = null;
    let cached: CachedState | null = null;
    let outage: string | null = null;
    try {
      await backend.ensureSchema();
      changes = await backend.store.changesSince(0);
    } catch (e) {
      if (!(e instanceof StoreUnavailableError)) throw e;
      outage = e.message;
      try {
        cached = cache ? await cache.read() : null;
      } catch (ce) {
        throw new StartupError(`${e.message}, and the local state cache cannot be used (${(ce as Error).message})`);
      }
      if (!cached) throw new StartupError(`${e.message}, and there is no local state cache to start from (${cache?.dir ?? "none"})`);
      log.warn("shared state unreachable at start: serving the locally cached state until it is back", { revision: cached.rev, written_at: cached.written_at, error: e.message });
    }
    const docs = changes ? changes.policies.filter((p) => p.document !== null) : cached!.policies;
    const policies = await PolicyStore.open(opts.policies, docs);
    const s = new SharedState(opts, policies);
    s.desired = new Map(docs.map((d) => [d.name, d]));
    s.latestSeq = new Map((changes ? changes.policies : docs).map((d) => [d.name, d.seq]));
    if (changes) {
      s.incidents.apply(changes.incidents, true);
      s.rollout.apply(changes.rollout ?? DEFAULT_ROLLOUT);
      s.applied = changes.rev;
      s.storeRev = changes.rev;
      s.connected = true;
      s.matchedAt = Date.now();
      s.source = "store";
      await s.writeCache();
    } else {
      s.incidents.apply(cached!.incidents, true);
      s.rollout.apply(cached!.rollout);
      s.applied = cached!.rev;
      s.source = "cache";
      s.lastError = outage;
      const served = policies.current()!.version;
      if (cached!.module && cached!.module.files_fingerprint === policies.filesFingerprint() && cached!.module.version !== served) {
        log.warn("the module rebuilt from the cache differs from the one cached", { cached: cached!.module.version, built: served });
      }
    }
    s.registerMetrics();
    return s;
  }

  /** Starts the change feed, the periodic check and the heartbeat. */
  start(): void {
    const { backend } = this.opts;
    if (!backend || this.closed) return;
    this.feed = new ChangeFeed(
      backend.feedDsn,
      {
        notified: (rev) => {
          if (rev !== this.applied) this.requestSync();
        },
        listening: () => {
          this.feedListening = true;
          // Notifications may have been missed while the feed was away.
          this.requestSync();
        },
      },
      this.opts.log,
      this.opts.replicaId,
    );
    void this.feed.restart();
    // A round still waiting for the store (an outage) is not joined by the next one.
    const every = (ms: number, f: () => Promise<void>): void => {
      let running = false;
      const t = setInterval(() => {
        if (running) return;
        running = true;
        void f()
          .catch((e) => this.opts.log.error("shared state task failed", { err: e }))
          .finally(() => {
            running = false;
          });
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.syncIntervalMs, () => this.check());
    every(this.opts.heartbeatIntervalMs, () => this.heartbeat());
    void this.heartbeat();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.queue.catch(() => undefined);
    await this.feed?.close();
    await this.beating;
    // Leave the live set at once (canary roles move now, not after the staleness delay).
    if (this.opts.backend && this.connected) await this.opts.backend.store.deregister(this.opts.replicaId).catch(() => undefined);
    await this.policies.close();
    // Before the audit trail stops an embedded server under the pool's feet.
    await this.opts.backend?.close();
  }

  status(): StateStatus {
    const configured = this.opts.backend !== null;
    const since = this.matchedAt === null ? null : (Date.now() - this.matchedAt) / 1000;
    const behind = this.storeRev === null || this.storeRev !== this.applied || !this.servesDesired();
    const late = since === null || since * 1000 > 3 * this.opts.syncIntervalMs;
    return {
      configured,
      replica: this.opts.replicaId,
      connected: configured && this.connected,
      stale: configured && (!this.connected || behind || late),
      revision: this.applied,
      store_revision: this.storeRev,
      matched_at: this.matchedAt === null ? null : new Date(this.matchedAt).toISOString(),
      seconds_since_match: since,
      source: this.source,
      feed_listening: this.feedListening,
      last_error: this.lastError,
    };
  }

  /** What this replica reports in its heartbeat. */
  replicaStatus(): ReplicaStatus {
    const active = this.policies.current();
    const last = this.policies.lastReload();
    return {
      policy_version: active?.version ?? null,
      module_sha256: active?.wasmSha256 ?? null,
      revision: this.applied,
      mode: this.rollout.global(),
      canary: this.rollout.canaryRoles(),
      last_reload: last ? { result: last.result, trigger: last.trigger, at: last.at, errors: last.errors.slice(0, 20) } : null,
      last_error: this.lastError,
      matched_at: this.matchedAt === null ? null : new Date(this.matchedAt).toISOString(),
    };
  }

  // ---- reads that go to the store ----

  history(name: string, limit: number, before: number | null): Promise<PolicyVersion[] | WriteRefusal> {
    return this.withStore((b) => b.store.history(name, limit, before));
  }

  version(name: string, seq: number): Promise<PolicyVersion | null | WriteRefusal> {
    return this.withStore((b) => b.store.version(name, { seq }));
  }

  /** Every replica heard from in the last day, with this replica's view of staleness. */
  replicas(): Promise<ReplicaRow[] | WriteRefusal> {
    return this.withStore((b) => b.store.replicas());
  }

  staleAfterSeconds(): number {
    return (3 * this.opts.heartbeatIntervalMs) / 1000;
  }

  /**
   * Which replica serves which policy version and whether the live ones agree (GET /v1/replicas,
   * the console's overview). This replica's own row is what it serves now, not its last
   * heartbeat: a swap between two heartbeats would otherwise show it disagreeing with itself.
   */
  async replicaView(): Promise<ReplicaView | WriteRefusal> {
    const rows = await this.replicas();
    if (!Array.isArray(rows)) return rows;
    const me = this.status();
    const staleAfter = this.staleAfterSeconds();
    const replicas = rows
      .map((r) => (r.id === me.replica ? { ...r, status: this.replicaStatus() } : r))
      .map((r) => ({
        id: r.id,
        stale: r.age_seconds > staleAfter,
        heartbeat_at: r.heartbeat_at,
        seconds_since_heartbeat: Math.round(r.age_seconds * 10) / 10,
        started_at: r.started_at,
        matches_store: me.store_revision !== null && r.status.revision === me.store_revision,
        ...r.status,
      }));
    const versions = [...new Set(replicas.filter((r) => !r.stale).map((r) => r.policy_version))];
    return { revision: me.store_revision, stale_after_seconds: staleAfter, agree: versions.length <= 1, versions, replicas };
  }

  // ---- writes ----

  putPolicy(name: string, text: string, o: PolicyWriteOptions): Promise<PolicyWriteResult> {
    const sha = sha256(text);
    return this.write(async (b) => {
      const current = this.desired.get(name) ?? null;
      const early = this.precondition(current, o);
      if (early) return early;
      const doc: PolicyVersion = { name, seq: this.nextSeq(name), rev: 0, action: "put", document: text, sha256: sha, rollback_of: null, author: o.author, message: o.message, created_at: new Date().toISOString() };
      return this.commitPolicy(b, doc, o);
    });
  }

  deletePolicy(name: string, o: PolicyWriteOptions): Promise<PolicyWriteResult> {
    return this.write(async (b) => {
      const current = this.desired.get(name) ?? null;
      if (!current) {
        const file = this.policies.fileOwner(name);
        if (file) return { ok: false, status: 409, code: "policy_from_file", message: `policy "${name}" comes from ${file}; remove it there (the API only deletes policies written through the API)`, file };
        return { ok: false, status: 404, code: "policy_not_found", message: `no policy named "${name}"` };
      }
      const early = this.precondition(current, o);
      if (early) return early;
      const doc: PolicyVersion = { name, seq: this.nextSeq(name), rev: 0, action: "delete", document: null, sha256: null, rollback_of: null, author: o.author, message: o.message, created_at: new Date().toISOString() };
      return this.commitPolicy(b, doc, o);
    });
  }

  /** Makes an earlier version (by its number in the history, or its sha256) the latest again. */
  rollbackPolicy(name: string, to: { seq: number } | { sha256: string }, o: PolicyWriteOptions): Promise<PolicyWriteResult> {
    return this.write(async (b) => {
      const target = await b.store.version(name, to);
      if (!target) return { ok: false, status: 404, code: "version_not_found", message: `policy "${name}" has no version ${"seq" in to ? to.seq : `sha256:${to.sha256}`} in its history` };
      if (target.document === null) return { ok: false, status: 400, code: "not_a_version", message: `version ${target.seq} of "${name}" is a deletion; roll back to a version with a document` };
      const current = this.desired.get(name) ?? null;
      const early = this.precondition(current, o);
      if (early) return early;
      const doc: PolicyVersion = { name, seq: this.nextSeq(name), rev: 0, action: "rollback", document: target.document, sha256: target.sha256, rollback_of: target.seq, author: o.author, message: o.message, created_at: new Date().toISOString() };
      return this.commitPolicy(b, doc, o);
    });
  }

  putIncident(id: string, input: IncidentInput, author: string | null): Promise<{ ok: true; created: boolean; incident: IncidentRecord } | WriteRefusal> {
    return this.write(async (b) => {
      const r = await b.store.putIncident(id, input, author);
      if (!r.ok) return { ok: false, status: 404, code: "incident_not_found", message: `no incident "${id}"` };
      await this.syncLocked(null);
      return { ok: true, created: r.created, incident: r.incident };
    });
  }

  closeIncident(id: string, author: string | null): Promise<{ ok: true; incident: IncidentRecord } | WriteRefusal> {
    return this.write(async (b) => {
      const r = await b.store.closeIncident(id, author);
      if (!r.ok) return { ok: false, status: 404, code: "incident_not_found", message: `no open incident "${id}"` };
      await this.syncLocked(null);
      return { ok: true, incident: r.incident };
    });
  }

  putRollout(input: RolloutInput, ifMatchRev: number | null, author: string | null, message: string | null): Promise<{ ok: true; settings: RolloutSettings } | RolloutConflict | WriteRefusal> {
    return this.write<{ ok: true; settings: RolloutSettings } | RolloutConflict>(async (b) => {
      const r = await b.store.commitRollout({ ...input, author, message }, ifMatchRev);
      if (!r.ok) return { ok: false, status: 412, code: "rollout_changed", message: `the rollout settings changed meanwhile (now revision ${r.current.rev})`, settings: r.current };
      await this.syncLocked(null);
      return { ok: true, settings: r.settings };
    });
  }

  // ---- internals ----

  /**
   * The number the store will give this name's next version, as far as this replica knows (it
   * just caught up). The store assigns the real one; a prepared module carrying another is rebuilt.
   */
  private nextSeq(name: string): number {
    return (this.latestSeq.get(name) ?? 0) + 1;
  }

  private precondition(current: PolicyVersion | null, o: PolicyWriteOptions): WriteRefusal | null {
    const fail = (why: string): WriteRefusal => ({
      ok: false,
      status: 412,
      code: "precondition_failed",
      message: why,
      current: current ? { version: `sha256:${current.sha256}`, revision: current.seq } : null,
    });
    if (o.ifNoneMatch && current) return fail(`policy "${current.name}" already exists (If-None-Match: *)`);
    if (o.ifMatch != null) {
      if (!current) return fail("the policy does not exist (If-Match)");
      if (o.ifMatch !== "*" && o.ifMatch !== current.sha256) return fail(`the policy is at sha256:${current.sha256}, not the If-Match version`);
    }
    return null;
  }

  private async commitPolicy(b: StateBackend, doc: PolicyVersion, o: PolicyWriteOptions): Promise<PolicyWriteResult> {
    const prep = await this.policies.prepare(doc.name, doc.document === null ? null : doc);
    if (!prep.ok) {
      if (prep.reason === "file_owned") {
        return { ok: false, status: 409, code: "policy_from_file", message: `policy "${doc.name}" is defined by ${prep.file}; change it there (a file owns its names)`, file: prep.file };
      }
      // Nothing is committed: the write can be retried, and the old module keeps serving.
      if (prep.reason === "unavailable") return { ok: false, status: 503, code: "build_unavailable", message: `the policy could not be built here: ${prep.message}; nothing was written` };
      const n = prep.diagnostics.length;
      return { ok: false, status: 422, code: "invalid_policy", message: `the policy does not validate (${n} error${n === 1 ? "" : "s"})`, diagnostics: prep.diagnostics };
    }
    const previousVersion = this.policies.current()?.version ?? null;
    const r = await b.store.commitPolicy(
      { name: doc.name, action: doc.action, document: doc.document, sha256: doc.sha256, rollbackOf: doc.rollback_of, author: o.author, message: o.message },
      { ifMatch: o.ifMatch ?? null, ifNoneMatch: o.ifNoneMatch ?? false },
    );
    if (!r.ok) {
      if (r.reason === "not_found") return { ok: false, status: 404, code: "policy_not_found", message: `no policy named "${doc.name}"` };
      const cur = r.current && r.current.action !== "delete" ? { version: `sha256:${r.current.sha256}`, revision: r.current.seq } : null;
      return { ok: false, status: 412, code: "precondition_failed", message: `policy "${doc.name}" changed meanwhile${cur ? ` (now ${cur.version}, revision ${cur.revision})` : ""}`, current: cur };
    }
    // Committed: from here on the write is acknowledged even if applying it here fails.
    await this.syncLocked(prep.prepared).catch((e) => this.noteError(e));
    const active = this.policies.current()!;
    return {
      ok: true,
      created: r.previous === null,
      version: active.version,
      previousVersion,
      info: active.policies.find((p) => p.name === doc.name) ?? null,
      stored: r.version,
    };
  }

  /** Runs a write in the state's queue after catching up with the store; 503 when it is unreachable. */
  private write<T>(f: (b: StateBackend) => Promise<T | WriteRefusal>): Promise<T | WriteRefusal> {
    const backend = this.opts.backend;
    if (!backend) return Promise.resolve(NO_STORE);
    return this.serial(async () => {
      try {
        await backend.ensureSchema();
        await this.syncLocked(null);
        return await f(backend);
      } catch (e) {
        if (e instanceof StoreUnavailableError) {
          this.noteError(e);
          return unavailable(e);
        }
        throw e;
      }
    });
  }

  private async withStore<T>(f: (b: StateBackend) => Promise<T>): Promise<T | WriteRefusal> {
    const backend = this.opts.backend;
    if (!backend) return NO_STORE;
    try {
      return await f(backend);
    } catch (e) {
      if (e instanceof StoreUnavailableError) return unavailable(e);
      throw e;
    }
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const p = this.queue.then(task, task);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Queues one sync unless one is already waiting to run. */
  private requestSync(): void {
    if (this.syncQueued || this.closed || !this.opts.backend) return;
    this.syncQueued = true;
    void this.serial(async () => {
      this.syncQueued = false;
      await this.syncLocked(null);
    }).catch((e) => this.noteError(e));
  }

  /** The periodic check: one small query for the store's revision and the feed's session. */
  private async check(): Promise<void> {
    const backend = this.opts.backend;
    if (!backend || this.closed) return;
    try {
      await backend.ensureSchema();
      const { rev, feedAlive } = await backend.store.check(this.feed?.app ?? "");
      this.connected = true;
      this.storeRev = rev;
      // The feed's session in pg_stat_activity is the truth about the feed.
      this.feedListening = feedAlive;
      if (!feedAlive) void this.feed?.restart();
      const retry = !this.servesDesired() && this.failedFingerprint !== this.policies.filesFingerprint();
      if (rev !== this.applied || retry) this.requestSync();
      else if (this.servesDesired()) {
        this.matchedAt = Date.now();
        this.lastError = null;
      }
    } catch (e) {
      this.feedListening = false;
      this.noteError(e);
    }
  }

  /** Reads every change after the applied revision and applies it; must run in the queue. */
  private async syncLocked(prepared: Prepared | null): Promise<void> {
    const backend = this.opts.backend;
    if (!backend) return;
    const changes = await backend.store.changesSince(this.applied);
    this.connected = true;
    this.storeRev = changes.rev;
    const changed = changes.rev !== this.applied || changes.full;
    if (changed) {
      const next = changes.full ? new Map<string, PolicyVersion>() : new Map(this.desired);
      if (changes.full) this.latestSeq = new Map();
      for (const p of changes.policies) {
        this.latestSeq.set(p.name, p.seq);
        if (p.document === null) next.delete(p.name);
        else next.set(p.name, p);
      }
      this.desired = next;
      this.incidents.apply(changes.incidents, changes.full);
      if (changes.rollout) this.rollout.apply(changes.rollout);
      else if (changes.full) this.rollout.apply(DEFAULT_ROLLOUT);
      this.applied = changes.rev;
    }
    if (changed || !this.servesDesired()) {
      const report = await this.policies.applyApi(this.desired, prepared ? "api" : "store", prepared);
      if (report.result === "failure") {
        this.failedFingerprint = this.policies.filesFingerprint();
        this.lastError = `the shared state's policies do not build here: ${report.errors.slice(0, 3).join("; ")}`;
      }
    }
    if (this.servesDesired()) {
      this.matchedAt = Date.now();
      this.failedFingerprint = null;
      this.lastError = null;
    }
    if (changed) await this.writeCache();
  }

  private servesDesired(): boolean {
    const served = this.policies.apiPolicies();
    if (served.size !== this.desired.size) return false;
    for (const [name, v] of this.desired) {
      const h = served.get(name);
      if (h?.sha256 !== v.sha256 || h.seq !== v.seq) return false;
    }
    return true;
  }

  /** Beats one at a time; close() waits for the one in flight, so that its row does not outlive the deregistration. */
  private heartbeat(): Promise<void> {
    this.beating = this.beating.then(() => this.beat());
    return this.beating;
  }

  private async beat(): Promise<void> {
    const backend = this.opts.backend;
    if (!backend || this.closed) return;
    try {
      const rows = await backend.store.heartbeat(this.opts.replicaId, this.startedAt, this.replicaStatus());
      const live = rows.filter((r) => r.age_seconds <= this.staleAfterSeconds()).map((r) => r.id);
      if (this.rollout.setLive(live) && !this.closed) {
        this.opts.log.info("canary roles changed", { replica: this.opts.replicaId, enforcing: this.rollout.canaryRoles(), live });
        // Report the new role at once rather than at the next beat.
        await backend.store.heartbeat(this.opts.replicaId, this.startedAt, this.replicaStatus());
      }
    } catch (e) {
      this.noteError(e);
    }
  }

  private noteError(e: unknown): void {
    if (e instanceof StoreUnavailableError) {
      if (this.connected) this.opts.log.warn("shared state unreachable: serving the last good state", { error: e.message });
      this.connected = false;
      this.lastError = e.message;
      return;
    }
    this.lastError = (e as Error).message ?? String(e);
    this.opts.log.error("shared state sync failed", { err: e });
  }

  private async writeCache(): Promise<void> {
    const cache = this.opts.cache;
    if (!cache) return;
    const active = this.policies.current();
    try {
      await cache.write({
        rev: this.applied,
        policies: [...this.desired.values()],
        incidents: this.incidents.heads(),
        rollout: this.rollout.current(),
        module: active && this.servesDesired() ? { version: active.version, files_fingerprint: this.policies.filesFingerprint() } : null,
        written_at: new Date().toISOString(),
      });
    } catch (e) {
      this.opts.log.warn("cannot write the local state cache", { dir: cache.dir, err: e });
    }
  }

  private registerMetrics(): void {
    this.opts.metrics.sharedState(() => {
      const s = this.status();
      return { configured: s.configured, up: s.connected, stale: s.stale, sinceMatchSeconds: s.seconds_since_match, revision: s.revision };
    });
  }
}
