// The active policy module and how it changes. Two sources of policies:
//   - files under ZT_POLICY_PATH (read-only for the engine; watched and rescanned);
//   - policies written through the API, persisted as <ZT_DATA_DIR>/policies/<name>.yaml.
// An API policy overrides a file policy of the same name and survives restarts; deleting it
// brings the file policy back. Every change builds a complete new module off to the side
// (parse, validate, compile, instantiate) and only then replaces one reference, so a request
// is evaluated wholly by one module version and a failed change leaves the old module serving.
import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Diagnostic, sortDiagnostics } from "../../compiler/diagnostics.js";
import { compilePolicySet, type Manifest } from "../../compiler/compile.js";
import { buildPolicySet, policyFiles } from "../../compiler/load.js";
import type { Policy, PolicyKind, PolicySet } from "../../compiler/model.js";
import { parsePolicyText } from "../../compiler/parse.js";
import { removeFileDurable, writeFileDurable } from "../common/durable-file.js";
import type { Logger } from "../common/logger.js";
import { MetricLabels } from "../metrics/labels.js";
import type { EngineMetrics, ReloadTrigger } from "../metrics/metrics.js";
import { PolicyRuntime } from "./runtime.js";

export type PolicyOrigin = "file" | "api";

export interface PolicyInfo {
  name: string;
  kind: PolicyKind;
  /** Rule ids in evaluation order (`<policy>/<rule>`). */
  rules: string[];
  origin: PolicyOrigin;
  /** The file it was read from (for API policies: its copy under ZT_DATA_DIR). */
  file: string;
  /** For an API policy that hides a file policy of the same name: that file. */
  overrides_file: string | null;
  /** `sha256:<hex>` of the policy's validated model. */
  version: string;
  /** When this exact version of the policy first became active. */
  loaded_at: string;
}

/** One immutable generation: everything a request needs, read through one reference. */
export interface ActivePolicies {
  readonly runtime: PolicyRuntime;
  readonly version: string;
  readonly wasm: Uint8Array;
  readonly wasmSha256: string;
  readonly manifest: Manifest;
  readonly set: PolicySet;
  readonly policies: readonly PolicyInfo[];
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

export type ChangeResult =
  | { ok: true; created: boolean; info: PolicyInfo | null; version: string; previousVersion: string | null }
  | { ok: false; status: 404 | 409 | 422 | 500; code: string; message: string; diagnostics: Diagnostic[] };

export interface PolicyStoreOptions {
  policyPath: string;
  dataDir: string;
  log: Logger;
  metrics: EngineMetrics;
  watchDebounceMs: number;
  rescanIntervalMs: number;
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

const API_DIR = "policies";

function policyHash(p: Policy): string {
  return "sha256:" + createHash("sha256").update(JSON.stringify(p)).digest("hex");
}

export class PolicyStore {
  private active: ActivePolicies | null = null;
  private filePolicies: Policy[] = [];
  private readonly apiPolicies = new Map<string, Policy>();
  private fileFingerprint: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private rescan: NodeJS.Timeout | null = null;
  private generation = 0;
  private closed = false;
  private last: ReloadReport | null = null;
  private readonly firstSeen = new Map<string, string>();
  private readonly listeners: Array<(a: ActivePolicies) => void> = [];

  private constructor(private readonly opts: PolicyStoreOptions) {}

  get apiDir(): string {
    return join(this.opts.dataDir, API_DIR);
  }

  /** Loads file and API policies and builds the first module; throws PolicyStoreError with every diagnostic. */
  static async open(opts: PolicyStoreOptions): Promise<PolicyStore> {
    const store = new PolicyStore(opts);
    const api = await store.readApiPolicies();
    const files = await store.readFilePolicies();
    const errors = [...api.errors, ...files.errors];
    if (errors.length > 0) {
      opts.metrics.reload("failure", "startup");
      throw new PolicyStoreError("the policies do not validate", sortDiagnostics(errors));
    }
    for (const p of api.policies) store.apiPolicies.set(p.name, p);
    store.filePolicies = files.policies;
    store.fileFingerprint = files.fingerprint;
    const built = await store.build(store.filePolicies, store.apiPolicies);
    if (!built.ok) {
      opts.metrics.reload("failure", "startup");
      throw new PolicyStoreError("the policies do not validate", built.diagnostics);
    }
    store.swap(built.next, "startup");
    if (files.missing) opts.log.warn("policy path does not exist yet: only API policies are active", { policy_path: opts.policyPath });
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

  /** Validates, compiles and activates an API policy; the text must hold exactly one policy named `name`. */
  putApiPolicy(name: string, text: string): Promise<ChangeResult> {
    return this.serial(async () => {
      const file = join(this.apiDir, `${name}.yaml`);
      const parsed = parsePolicyText(text, file);
      if (!parsed.ok) return invalid(parsed.errors);
      if (parsed.policies.length !== 1) {
        return invalid([{ file, line: 1, col: 1, message: `expected exactly one policy document, found ${parsed.policies.length}` }]);
      }
      const policy = parsed.policies[0]!;
      if (policy.name !== name) {
        return invalid([{ file, line: 1, col: 1, message: `metadata.name "${policy.name}" does not match the name in the URL ("${name}")` }]);
      }
      const api = new Map(this.apiPolicies);
      const created = !api.has(name);
      api.set(name, policy);
      const built = await this.build(this.filePolicies, api);
      if (!built.ok) {
        this.noteFailure("api", built.diagnostics);
        return invalid(built.diagnostics);
      }
      // Durable before it is active: an accepted policy is never lost by a restart.
      await writeFileDurable(file, text.endsWith("\n") ? text : text + "\n", 0o600);
      this.apiPolicies.set(name, policy);
      const previousVersion = this.active?.version ?? null;
      this.swap(built.next, "api");
      return { ok: true, created, info: built.next.policies.find((p) => p.name === name) ?? null, version: built.next.version, previousVersion };
    });
  }

  /** Removes an API policy (a file policy of the same name becomes active again). */
  deleteApiPolicy(name: string): Promise<ChangeResult> {
    return this.serial(async () => {
      if (!this.apiPolicies.has(name)) {
        const fromFile = this.filePolicies.find((p) => p.name === name);
        if (fromFile) {
          return { ok: false, status: 409, code: "policy_from_file", message: `policy "${name}" comes from ${fromFile.source}; remove it there (the API only deletes policies written through the API)`, diagnostics: [] };
        }
        return { ok: false, status: 404, code: "policy_not_found", message: `no policy named "${name}"`, diagnostics: [] };
      }
      const api = new Map(this.apiPolicies);
      api.delete(name);
      const built = await this.build(this.filePolicies, api);
      if (!built.ok) {
        this.noteFailure("api", built.diagnostics);
        return invalid(built.diagnostics);
      }
      await removeFileDurable(join(this.apiDir, `${name}.yaml`));
      this.apiPolicies.delete(name);
      const previousVersion = this.active?.version ?? null;
      this.swap(built.next, "api");
      return { ok: true, created: false, info: built.next.policies.find((p) => p.name === name) ?? null, version: built.next.version, previousVersion };
    });
  }

  /** Re-reads ZT_POLICY_PATH; rebuilds only when the files' content changed. */
  reloadFiles(trigger: ReloadTrigger = "file"): Promise<ReloadReport> {
    return this.serial(async () => {
      const at = new Date().toISOString();
      const files = await this.readFilePolicies();
      if (files.fingerprint === this.fileFingerprint) {
        return { result: "unchanged", trigger, at, version: this.active?.version ?? null, errors: [] } satisfies ReloadReport;
      }
      this.fileFingerprint = files.fingerprint;
      if (files.errors.length > 0) return this.noteFailure(trigger, files.errors);
      const built = await this.build(files.policies, this.apiPolicies);
      if (!built.ok) return this.noteFailure(trigger, built.diagnostics);
      this.filePolicies = files.policies;
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
    try {
      this.watcher = watch(this.opts.policyPath, { recursive: true, persistent: false }, schedule);
      this.watcher.on("error", (e) => {
        // The directory may be replaced (ConfigMap symlink swap) or removed: the rescan covers it.
        this.opts.log.warn("policy watch stopped; relying on the periodic rescan", { err: e });
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (e) {
      this.opts.log.warn("cannot watch the policy path; relying on the periodic rescan", { policy_path: this.opts.policyPath, err: e });
    }
    if (this.opts.rescanIntervalMs > 0) {
      this.rescan = setInterval(() => {
        if (!this.watcher) {
          try {
            this.watcher = watch(this.opts.policyPath, { recursive: true, persistent: false }, schedule);
            this.watcher.on("error", () => {
              this.watcher?.close();
              this.watcher = null;
            });
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
  }

  // ---- internals ----

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const p = this.queue.then(task, task);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private noteFailure(trigger: ReloadTrigger, diagnostics: readonly Diagnostic[]): ReloadReport {
    this.opts.metrics.reload("failure", trigger);
    const errors = diagnostics.map(formatDiag);
    this.last = { result: "failure", trigger, at: new Date().toISOString(), version: this.active?.version ?? null, errors };
    this.opts.log.warn("policy change rejected; the previous module keeps serving", { trigger, errors, version: this.active?.version ?? null });
    return this.last;
  }

  private async readApiPolicies(): Promise<{ policies: Policy[]; errors: Diagnostic[] }> {
    let names: string[];
    try {
      names = (await readdir(this.apiDir)).filter((n) => n.endsWith(".yaml") && !n.startsWith(".")).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { policies: [], errors: [] };
      throw e;
    }
    const policies: Policy[] = [];
    const errors: Diagnostic[] = [];
    for (const n of names) {
      const file = join(this.apiDir, n);
      const r = parsePolicyText(await readFile(file, "utf8"), file);
      if (r.ok) policies.push(...r.policies);
      else errors.push(...r.errors);
    }
    return { policies, errors };
  }

  private async readFilePolicies(): Promise<{ policies: Policy[]; errors: Diagnostic[]; fingerprint: string; missing: boolean }> {
    const hash = createHash("sha256");
    let files: string[];
    try {
      await stat(this.opts.policyPath);
      files = await policyFiles([this.opts.policyPath]);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return { policies: [], errors: [], fingerprint: "missing", missing: true };
      return { policies: [], errors: [{ file: this.opts.policyPath, line: 1, col: 1, message: `cannot read: ${code ?? String(e)}` }], fingerprint: `error:${code}`, missing: false };
    }
    const policies: Policy[] = [];
    const errors: Diagnostic[] = [];
    for (const file of files) {
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
      const r = parsePolicyText(text, file);
      if (r.ok) policies.push(...r.policies);
      else errors.push(...r.errors);
    }
    return { policies, errors, fingerprint: hash.digest("hex"), missing: false };
  }

  private async build(files: readonly Policy[], api: ReadonlyMap<string, Policy>): Promise<{ ok: true; next: ActivePolicies } | { ok: false; diagnostics: Diagnostic[] }> {
    const merged = files.filter((p) => !api.has(p.name));
    merged.push(...api.values());
    const setResult = buildPolicySet(merged);
    if (!setResult.ok) return { ok: false, diagnostics: sortDiagnostics(setResult.errors) };
    const set = setResult.set;
    let compiled: Awaited<ReturnType<typeof compilePolicySet>>;
    let runtime: PolicyRuntime;
    try {
      compiled = await compilePolicySet(set);
      runtime = await PolicyRuntime.load(compiled.wasm);
    } catch (e) {
      return { ok: false, diagnostics: [{ file: "(compiler)", line: 1, col: 1, message: `cannot build the module: ${(e as Error).message}` }] };
    }
    const fileByName = new Map(files.map((p) => [p.name, p.source]));
    const now = new Date().toISOString();
    const policies: PolicyInfo[] = set.policies.map((p) => {
      const version = policyHash(p);
      const isApi = api.has(p.name);
      return {
        name: p.name,
        kind: p.kind,
        rules: p.rules.map((r) => r.id),
        origin: isApi ? "api" : "file",
        file: p.source,
        overrides_file: isApi ? (fileByName.get(p.name) ?? null) : null,
        version,
        loaded_at: this.firstSeen.get(version) ?? now,
      };
    });
    const wasmSha256 = createHash("sha256").update(compiled.wasm).digest("hex");
    return {
      ok: true,
      next: {
        runtime,
        version: compiled.version,
        wasm: compiled.wasm,
        wasmSha256,
        manifest: compiled.manifest,
        set,
        policies,
        labels: new MetricLabels(set),
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
    for (const l of this.listeners) l(next);
  }
}

function formatDiag(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

function invalid(diagnostics: readonly Diagnostic[]): ChangeResult {
  const list = sortDiagnostics(diagnostics);
  return { ok: false, status: 422, code: "invalid_policy", message: `the policy does not validate (${list.length} error${list.length === 1 ? "" : "s"})`, diagnostics: list };
}
