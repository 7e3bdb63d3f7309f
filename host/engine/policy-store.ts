// The active policy module and how it changes. Two sources of policies:
//   - files under ZT_POLICY_PATH (read-only for the engine; watched and rescanned);
//   - policies written through the API, kept in the shared state (host/store) and handed in
//     by shared-state.ts, the same on every replica.
// A file owns its names: an API policy of a name that a file defines is not served (writes of
// such a name are refused with 409; one stored before the file appeared is reported as
// shadowed). Every change builds a complete new module off to the side and only then replaces
// one reference, so a request is evaluated wholly by one module version and a failed change
// leaves the old module serving. The build itself (parse, validate, compile, link, load check)
// runs on the build thread (builder.ts); this thread only instantiates the checked module and
// swaps. Changes are built one at a time in arrival order: a later write waits for the build
// of an earlier one (each write gets its own answer: its 422, or the module it produced).
import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { Manifest } from "../../compiler/compile.js";
import { type Diagnostic, formatDiagnostic } from "../../compiler/diagnostics.js";
import { policyFiles } from "../../compiler/load.js";
import type { PolicyKind, PolicySet } from "../../compiler/model.js";
import type { Logger } from "../common/logger.js";
import { MetricLabels } from "../metrics/labels.js";
import type { EngineMetrics, ReloadTrigger } from "../metrics/metrics.js";
import type { PolicyVersion } from "../store/types.js";
import type { ApiText, FileText } from "./build.js";
import { createBuilder, type ModuleBuilder } from "./builder.js";
import { PolicyRuntime } from "./runtime.js";
import { SetAssembler, type SetPieces } from "./set-transfer.js";

export type PolicyOrigin = "file" | "api";

export interface PolicyInfo {
  name: string;
  kind: PolicyKind;
  /** Rule ids in evaluation order (`<policy>/<rule>`). */
  rules: string[];
  origin: PolicyOrigin;
  /** The file it was read from; null for an API policy. */
  file: string | null;
  /**
   * `sha256:<hex>`: for an API policy, of its stored text (its ETag, what If-Match compares);
   * for a file policy, of its validated model.
   */
  version: string;
  /** When this exact version of the policy first became active on this replica. */
  loaded_at: string;
  /** API policies: the version number in the policy's history (GET /v1/policies/{name}/history). */
  revision: number | null;
  /** API policies: who wrote this version, and when. */
  author: string | null;
  updated_at: string | null;
}

/** An API policy that is not served because a file defines the same name. */
export interface ShadowedPolicy {
  name: string;
  file: string;
  revision: number;
}

/** One immutable generation: everything a request needs, read through one reference. */
export interface ActivePolicies {
  readonly runtime: PolicyRuntime;
  readonly version: string;
  readonly wasm: Uint8Array;
  readonly wasmSha256: string;
  readonly manifest: Manifest;
  readonly set: PolicySet;
  /** The set as the build thread serialized it: what a candidate thread reads its base from, without the serving thread serializing the set again. */
  readonly setPieces: SetPieces;
  readonly policies: readonly PolicyInfo[];
  readonly shadowed: readonly ShadowedPolicy[];
  readonly labels: MetricLabels;
  readonly loadedAt: string;
  readonly generation: number;
}

export interface ReloadReport {
  result: "success" | "failure" | "unchanged";
  trigger: ReloadTrigger;
  at: string;
  version: string | null;
  errors: string[];
}

export interface PolicyStoreOptions {
  policyPath: string;
  log: Logger;
  metrics: EngineMetrics;
  watchDebounceMs: number;
  rescanIntervalMs: number;
  /** Build on the serving thread (ZT_BUILD_INLINE: the bench's before-figure only). */
  buildInline?: boolean;
  /** The build thread's heap limit, MB (ZT_BUILD_MEMORY_MB). */
  buildMemoryMb?: number;
  /** How long a build may run before its thread is stopped, ms (ZT_BUILD_TIMEOUT_MS). */
  buildTimeoutMs?: number;
}

export class PolicyStoreError extends Error {
  constructor(
    message: string,
    readonly diagnostics: Diagnostic[],
  ) {
    super(message);
    this.name = "PolicyStoreError";
  }
}

/** A module built for a change that is not active yet (see prepare / applyApi). */
export interface Prepared {
  readonly next: ActivePolicies;
  /** The inputs it was built from: the files' fingerprint and each API policy's version and sha256. */
  readonly filesFingerprint: string;
  readonly api: ReadonlyMap<string, string>;
}

export type PrepareResult =
  | { ok: true; prepared: Prepared }
  | { ok: false; reason: "invalid"; diagnostics: Diagnostic[] }
  /** The build did not run to an answer (its thread died): retry; nothing is known about the input. */
  | { ok: false; reason: "unavailable"; message: string }
  | { ok: false; reason: "file_owned"; file: string };

type Built = { ok: true; next: ActivePolicies; fileOwners: Map<string, string> } | { ok: false; reason: "invalid"; diagnostics: Diagnostic[] } | { ok: false; reason: "unavailable"; message: string };

/** What a failed build reports (lastReload, logs). */
function failureDiagnostics(b: Exclude<Built, { ok: true }>): Diagnostic[] {
  return b.reason === "invalid" ? b.diagnostics : [{ file: "(build)", line: 1, col: 1, message: b.message }];
}

interface FileState {
  texts: FileText[];
  fingerprint: string;
  missing: boolean;
  errors: Diagnostic[];
}

/** What a module's API part is built from: each policy's version number and text hash. */
function apiShas(api: ReadonlyMap<string, PolicyVersion>): Map<string, string> {
  return new Map([...api].map(([n, v]) => [n, `${v.seq}:${v.sha256!}`]));
}

function sameApi(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** The build thread's default heap limit: a 100,000-rule set builds in well under it. */
export const DEFAULT_BUILD_MEMORY_MB = 2048;
/** Minutes more than a 50,000-rule build takes on a loaded 2-core machine: only a stuck build reaches it. */
export const DEFAULT_BUILD_TIMEOUT_MS = 300_000;

export class PolicyStore {
  private active: ActivePolicies | null = null;
  private files: FileState = { texts: [], fingerprint: "none", missing: true, errors: [] };
  private api = new Map<string, PolicyVersion>();
  private fileOwners = new Map<string, string>();
  private readonly builder: ModuleBuilder;
  private queue: Promise<unknown> = Promise.resolve();
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private rescan: NodeJS.Timeout | null = null;
  private generation = 0;
  private closed = false;
  private last: ReloadReport | null = null;
  private readonly firstSeen = new Map<string, string>();
  private readonly listeners: Array<(a: ActivePolicies) => void> = [];

  private constructor(private readonly opts: PolicyStoreOptions) {
    this.builder = createBuilder({ inline: opts.buildInline ?? false, memoryMb: opts.buildMemoryMb ?? DEFAULT_BUILD_MEMORY_MB, timeoutMs: opts.buildTimeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS, log: opts.log });
  }

  /**
   * Loads the file policies, adds the API policies given (the shared state's, or the local
   * cache's during an outage) and builds the first module; throws PolicyStoreError with every diagnostic.
   */
  static async open(opts: PolicyStoreOptions, api: readonly PolicyVersion[] = []): Promise<PolicyStore> {
    const store = new PolicyStore(opts);
    const fail = async (diagnostics: Diagnostic[]): Promise<never> => {
      await store.builder.close();
      opts.metrics.reload("failure", "startup");
      throw new PolicyStoreError("the policies do not validate", diagnostics);
    };
    store.files = await store.readFiles();
    if (store.files.errors.length > 0) return fail(store.files.errors);
    const docs = new Map(api.filter((v) => v.document !== null).map((v) => [v.name, v]));
    const built = await store.build(store.files, docs);
    if (!built.ok) return fail(failureDiagnostics(built));
    store.api = docs;
    store.fileOwners = built.fileOwners;
    store.swap(built.next, "startup");
    if (store.files.missing) opts.log.warn("policy path does not exist yet: only API policies are active", { policy_path: opts.policyPath });
    return store;
  }

  /** The module serving right now. Read it once per request. */
  current(): ActivePolicies | null {
    return this.active;
  }

  lastReload(): ReloadReport | null {
    return this.last;
  }

  onSwap(listener: (a: ActivePolicies) => void): void {
    this.listeners.push(listener);
  }

  /** The file that defines `name`, or null. */
  fileOwner(name: string): string | null {
    return this.fileOwners.get(name) ?? null;
  }

  /** The API policy of that name as served (its latest stored version), if any. */
  apiPolicy(name: string): PolicyVersion | null {
    return this.api.get(name) ?? null;
  }

  /** The API policies as served, by name. */
  apiPolicies(): ReadonlyMap<string, PolicyVersion> {
    return this.api;
  }

  /**
   * The text `name` is served from: an API policy's stored document, or the policy file's
   * content (read now; null when it cannot be read). Null for a name not served.
   */
  async policyText(name: string): Promise<string | null> {
    const info = this.active?.policies.find((p) => p.name === name);
    if (!info) return null;
    if (info.origin === "api") return this.api.get(name)?.document ?? null;
    return info.file === null ? null : readFile(info.file, "utf8").catch(() => null);
  }

  /** The fingerprint of the file policies the active module was built with. */
  filesFingerprint(): string {
    return this.files.fingerprint;
  }

  /**
   * Builds the module that would serve if the API policy `name` had `doc` as its latest version
   * (null: deleted), without activating it: 422 material, a file that owns the name, or a module
   * to hand to applyApi once the change is committed.
   */
  prepare(name: string, doc: PolicyVersion | null): Promise<PrepareResult> {
    return this.serial(async () => {
      const owner = this.fileOwners.get(name);
      if (owner !== undefined && doc !== null) return { ok: false, reason: "file_owned", file: owner } as const;
      const api = new Map(this.api);
      if (doc === null) api.delete(name);
      else api.set(name, doc);
      const built = await this.build(this.files, api);
      if (!built.ok) return built;
      return { ok: true, prepared: { next: built.next, filesFingerprint: this.files.fingerprint, api: apiShas(api) } } as const;
    });
  }

  /**
   * Serves exactly these API policies (the shared state's latest versions). A `prepared` module
   * built from the same inputs is swapped in as is; otherwise the set is rebuilt. A set that
   * does not build leaves the old module serving (reported in lastReload).
   */
  applyApi(docs: ReadonlyMap<string, PolicyVersion>, trigger: ReloadTrigger, prepared: Prepared | null = null): Promise<ReloadReport> {
    return this.serial(async () => {
      const next = new Map([...docs].filter(([, v]) => v.document !== null));
      const shas = apiShas(next);
      if (sameApi(shas, apiShas(this.api)) && this.active !== null) {
        return { result: "unchanged", trigger, at: new Date().toISOString(), version: this.active.version, errors: [] } satisfies ReloadReport;
      }
      let active: ActivePolicies;
      if (prepared && prepared.filesFingerprint === this.files.fingerprint && sameApi(prepared.api, shas)) {
        active = prepared.next;
      } else {
        const built = await this.build(this.files, next);
        if (!built.ok) return this.noteFailure(trigger, failureDiagnostics(built));
        active = built.next;
      }
      this.api = next;
      this.swap(active, trigger);
      return this.last!;
    });
  }

  /** Re-reads ZT_POLICY_PATH; rebuilds only when the files' content changed. */
  reloadFiles(trigger: ReloadTrigger = "file"): Promise<ReloadReport> {
    return this.serial(async () => {
      const at = new Date().toISOString();
      const files = await this.readFiles();
      if (files.fingerprint === this.files.fingerprint) {
        return { result: "unchanged", trigger, at, version: this.active?.version ?? null, errors: [] } satisfies ReloadReport;
      }
      if (files.errors.length > 0) {
        this.files = { ...this.files, fingerprint: files.fingerprint };
        return this.noteFailure(trigger, files.errors);
      }
      const built = await this.build(files, this.api);
      if (!built.ok) {
        // Remember the fingerprint so an unchanged broken tree is not rebuilt at every rescan
        // (but do rebuild it when the build itself did not run to an answer).
        if (built.reason === "invalid") this.files = { ...this.files, fingerprint: files.fingerprint };
        return this.noteFailure(trigger, failureDiagnostics(built));
      }
      this.files = files;
      this.fileOwners = built.fileOwners;
      this.swap(built.next, trigger);
      return this.last!;
    });
  }

  /** fs.watch on the policy path (debounced) plus a periodic rescan for what watch misses. */
  startWatching(): void {
    if (this.closed) return;
    const schedule = (): void => {
      if (this.closed) return;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        this.debounce = null;
        void this.reloadFiles("file").catch((e) => this.opts.log.error("policy reload failed", { err: e }));
      }, this.opts.watchDebounceMs);
    };
    const startWatcher = (): void => {
      this.watcher = watch(this.opts.policyPath, { recursive: true, persistent: false }, schedule);
      this.watcher.on("error", (e) => {
        // The directory may be replaced (ConfigMap symlink swap) or removed: the rescan covers it.
        this.opts.log.warn("policy watch stopped; relying on the periodic rescan", { err: e });
        this.watcher?.close();
        this.watcher = null;
      });
    };
    try {
      startWatcher();
    } catch (e) {
      this.opts.log.warn("cannot watch the policy path; relying on the periodic rescan", { policy_path: this.opts.policyPath, err: e });
    }
    if (this.opts.rescanIntervalMs > 0) {
      this.rescan = setInterval(() => {
        if (!this.watcher) {
          try {
            startWatcher();
          } catch {
            // still missing; try again next round
          }
        }
        void this.reloadFiles("file").catch((e) => this.opts.log.error("policy rescan failed", { err: e }));
      }, this.opts.rescanIntervalMs);
      this.rescan.unref();
    }
  }

  /** Stops watching and waits for a change in progress to finish. */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.rescan) clearInterval(this.rescan);
    await this.queue.catch(() => undefined);
    await this.builder.close();
  }

  // ---- internals ----

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const p = this.queue.then(task, task);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private noteFailure(trigger: ReloadTrigger, diagnostics: readonly Diagnostic[]): ReloadReport {
    this.opts.metrics.reload("failure", trigger);
    const errors = diagnostics.map(formatDiagnostic);
    this.last = { result: "failure", trigger, at: new Date().toISOString(), version: this.active?.version ?? null, errors };
    this.opts.log.warn("policy change rejected; the previous module keeps serving", { trigger, errors, version: this.active?.version ?? null });
    return this.last;
  }

  private async readFiles(): Promise<FileState> {
    const hash = createHash("sha256");
    let paths: string[];
    try {
      await stat(this.opts.policyPath);
      paths = await policyFiles([this.opts.policyPath]);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return { texts: [], fingerprint: "missing", missing: true, errors: [] };
      return { texts: [], fingerprint: `error:${code}`, missing: false, errors: [{ file: this.opts.policyPath, line: 1, col: 1, message: `cannot read: ${code ?? String(e)}` }] };
    }
    const texts: FileText[] = [];
    const errors: Diagnostic[] = [];
    for (const file of paths) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (e) {
        // Removed between listing and reading: the next event or rescan sees the new state.
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT") continue;
        errors.push({ file, line: 1, col: 1, message: `cannot read: ${code ?? String(e)}` });
        continue;
      }
      hash.update(file).update("\0").update(text).update("\0");
      texts.push({ file, text });
    }
    return { texts, fingerprint: hash.digest("hex"), missing: false, errors };
  }

  private async build(files: FileState, api: ReadonlyMap<string, PolicyVersion>): Promise<Built> {
    const apiTexts: ApiText[] = [...api.values()].map((v) => ({ name: v.name, text: v.document! }));
    const result = await this.builder.build({ files: files.texts, api: apiTexts });
    if (!result.ok) return result;
    const b = result.build;
    let runtime: PolicyRuntime;
    try {
      runtime = PolicyRuntime.fromModule(b.module, b.wasm, b.version, b.manifest);
    } catch (e) {
      return { ok: false, reason: "invalid", diagnostics: [{ file: "(compiler)", line: 1, col: 1, message: `cannot load the module: ${(e as Error).message}` }] };
    }
    const now = new Date().toISOString();
    const policies: PolicyInfo[] = b.policies.map((p) => {
      const doc = b.fileOwners.has(p.name) ? undefined : api.get(p.name);
      const version = doc ? `sha256:${doc.sha256}` : p.modelHash;
      return {
        name: p.name,
        kind: p.kind,
        rules: p.rules,
        origin: doc ? "api" : "file",
        file: doc ? null : p.source,
        version,
        loaded_at: this.firstSeen.get(version) ?? now,
        revision: doc?.seq ?? null,
        author: doc?.author ?? null,
        updated_at: doc?.created_at ?? null,
      };
    });
    const shadowed = [...b.shadowed].map(([name, file]) => ({ name, file, revision: api.get(name)?.seq ?? 0 }));
    // The set's readers (admission reviews, rollout diff and tests) do not need it at once: it
    // is put back together in the background, a piece per turn, or at once by an early reader.
    const assembler = new SetAssembler(b.set);
    assembler.background();
    return {
      ok: true,
      fileOwners: b.fileOwners,
      next: {
        runtime,
        version: b.version,
        wasm: b.wasm,
        wasmSha256: b.version.slice("sha256:".length),
        manifest: b.manifest,
        get set() {
          return assembler.set;
        },
        setPieces: b.set,
        policies,
        shadowed,
        labels: new MetricLabels(b.labels),
        loadedAt: now,
        generation: this.generation + 1,
      },
    };
  }

  private swap(next: ActivePolicies, trigger: ReloadTrigger): void {
    const previous = this.active;
    this.active = next;
    this.generation = next.generation;
    this.firstSeen.clear();
    for (const p of next.policies) this.firstSeen.set(p.version, p.loaded_at);
    const rules = next.policies.reduce((n, p) => n + p.rules.length, 0);
    this.opts.metrics.reload("success", trigger);
    this.opts.metrics.policyVersion(next.version, Date.parse(next.loadedAt), next.policies.length, rules);
    this.last = { result: "success", trigger, at: next.loadedAt, version: next.version, errors: [] };
    this.opts.log.info("policy module active", { trigger, version: next.version, previous: previous?.version ?? null, policies: next.policies.length, rules });
    if (next.shadowed.length > 0) this.opts.log.warn("API policies not served: a policy file defines the same name", { shadowed: next.shadowed });
    for (const l of this.listeners) l(next);
  }
}
