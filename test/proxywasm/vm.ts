// One proxy-wasm VM as Envoy's host library runs it (proxy-wasm-cpp-host WasmBase + the V8
// integration): ABI detection from the export section, import linking that refuses any
// import the host does not register (or registers with another signature), export
// signature checks, the restricted start sequence, context ids, allocation through the
// module's own allocator, the host functions the ZT filter and its tests use, and traps
// that fail the whole VM. Host functions Envoy registers but this harness does not emulate
// link fine and throw HarnessUnsupportedError when called, so a test never silently passes
// through an unemulated path.
import { randomFillSync } from "node:crypto";
import {
  ABI_VERSION_EXPORTS,
  BufferType,
  ENVOY_HOST_FUNCTIONS_0_2_1,
  ENVOY_MODULE_FUNCTIONS_0_2_1,
  MALLOC_ALLOWED,
  MapType,
  MetricType,
  START_ALLOWED,
  StreamType,
  WasmResult,
  type AbiVersion,
} from "./envoy-abi.js";
import { decodePairs, encodePairs, pathToDotted, propertyBytes, type Pairs } from "./encodings.js";
import { HostContext, type HttpCallRecord, type LocalReply, type MetricState, type PluginSpec, type RootState } from "./contexts.js";
import { formatFuncType, readModuleSections, sameFuncType, type ModuleSections } from "./wasm-sections.js";

export type FailState = "UnableToInitializeCode" | "MissingFunction" | "StartFailed" | "ConfigureFailed" | "RuntimeError";

/** The module cannot be loaded, linked or started: Envoy rejects the filter configuration. */
export class HostLoadError extends Error {
  constructor(
    readonly failState: FailState,
    message: string,
  ) {
    super(message);
    this.name = "HostLoadError";
  }
}

/** The module called a host function this harness does not emulate (a harness gap, not a module bug). */
export class HarnessUnsupportedError extends Error {
  constructor(fn: string) {
    super(`harness does not emulate ${fn}`);
    this.name = "HarnessUnsupportedError";
  }
}

/** Raised inside a host function to make the module trap, like the V8 integration does. */
class HostTrap extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostTrap";
  }
}

export interface VmOptions {
  readonly vmConfiguration?: string;
  /** Cluster names proxy_http_call accepts (Envoy: clusters the cluster manager knows). */
  readonly clusters?: ReadonlySet<string>;
  /** Nanoseconds since the epoch for proxy_get_current_time_nanoseconds and WASI realtime. */
  readonly now: () => bigint;
  readonly logLevel?: number;
}

export interface LogEntry {
  readonly level: number;
  readonly message: string;
  readonly contextId: number;
}

type HostFn = (...args: Array<number | bigint>) => number | undefined;
type ModuleFn = (...args: number[]) => number | undefined;

const WASI_ESUCCESS = 0;
const WASI_EBADF = 8;
const WASI_EINVAL = 28;
const RANDOM_GET_MAX = 64 * 1024;

export function detectAbi(sections: ModuleSections): AbiVersion | null {
  // Envoy takes the first function export whose name is a known ABI marker.
  for (const e of sections.exports) {
    if (e.kind !== "func") continue;
    const i = (ABI_VERSION_EXPORTS as readonly string[]).indexOf(e.name);
    if (i >= 0) return (["0.1.0", "0.2.0", "0.2.1"] as const)[i]!;
  }
  return null;
}

/** Parses, detects the ABI and compiles once; VMs (base, canary, clones) instantiate from it. */
export class CompiledModule {
  private constructor(
    readonly bytes: Uint8Array,
    readonly sections: ModuleSections,
    readonly abi: AbiVersion,
    readonly module: WebAssembly.Module,
  ) {}

  static compile(bytes: Uint8Array): CompiledModule {
    let sections: ModuleSections;
    try {
      sections = readModuleSections(bytes);
    } catch (e) {
      throw new HostLoadError("UnableToInitializeCode", `Failed to parse corrupted Wasm module: ${(e as Error).message}`);
    }
    const abi = detectAbi(sections);
    if (abi === null) throw new HostLoadError("UnableToInitializeCode", "Missing or unknown Proxy-Wasm ABI version");
    if (abi !== "0.2.1") throw new HostLoadError("UnableToInitializeCode", `harness emulates ABI 0.2.1 only, module declares ${abi}`);
    let module: WebAssembly.Module;
    try {
      module = new WebAssembly.Module(new Uint8Array(bytes));
    } catch (e) {
      throw new HostLoadError("UnableToInitializeCode", `Failed to load Wasm bytecode: ${(e as Error).message}`);
    }
    return new CompiledModule(bytes, sections, abi, module);
  }
}

export class WasmVm {
  readonly logs: LogEntry[] = [];
  private readonly hostCallCounters = new Map<string, { n: number }>();

  /** Count of calls per host function ("env.proxy_log"), for tests and diagnostics. */
  get hostCalls(): ReadonlyMap<string, number> {
    return new Map([...this.hostCallCounters].map(([k, c]) => [k, c.n]));
  }
  /** Host functions called while the start functions ran. */
  readonly startCalls: string[] = [];
  /** Things Envoy would silently accept but are almost certainly module bugs (malformed pairs...). */
  readonly diagnostics: string[] = [];
  readonly contexts = new Map<number, HostContext>();
  readonly roots = new Map<number, RootState>();
  readonly metrics = new Map<number, MetricState>();
  readonly httpCalls = new Map<number, HttpCallRecord>();
  readonly sharedData = new Map<string, { value: Uint8Array; cas: number }>();
  /** Local replies sent by HTTP contexts (applied after the VM call, like Envoy). */
  readonly localReplies = new Map<number, LocalReply>();
  /** Streams the module asked to close or continue, by context id (applied after the VM call). */
  readonly closeRequests = new Map<number, Set<number>>();
  readonly continueRequests = new Map<number, Set<number>>();

  failed: FailState | null = null;
  failMessage = "";

  private instance!: WebAssembly.Instance;
  private memory!: WebAssembly.Memory;
  private readonly fns = new Map<string, ModuleFn>();
  private malloc: ModuleFn | null = null;
  private nextContextId = 1;
  private nextMetricId = 1;
  private nextHttpToken = 1;
  private nextCas = 1;
  private current: HostContext;
  private effectiveId = 0;
  private restricted: ReadonlySet<string> | null = null;
  private inStart = false;
  private depth = 0;
  private stopNextIteration = false;
  private readonly afterVmCall: Array<() => void> = [];
  private readonly vmContext: HostContext;

  constructor(
    readonly compiled: CompiledModule,
    readonly options: VmOptions,
  ) {
    // Envoy's VM context has id 0; it is current during start and allocation.
    this.vmContext = new HostContext(0, "vm", null);
    this.contexts.set(0, this.vmContext);
    this.current = this.vmContext;
  }

  // ---------------------------------------------------------------- loading

  /** Link, instantiate, look up the callbacks and run the start functions (WasmBase::initialize). */
  initialize(): void {
    const imports = this.link();
    try {
      this.instance = new WebAssembly.Instance(this.compiled.module, imports);
    } catch (e) {
      throw new HostLoadError("UnableToInitializeCode", `Failed to create new Wasm instance: ${(e as Error).message}`);
    }
    const mem = this.instance.exports["memory"];
    if (!(mem instanceof WebAssembly.Memory)) {
      throw new HostLoadError("UnableToInitializeCode", "module does not export its memory as \"memory\"");
    }
    this.memory = mem;
    this.getFunctions();
    this.startVm();
  }

  private link(): WebAssembly.Imports {
    const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
    for (const imp of this.compiled.sections.imports) {
      const key = `${imp.module}.${imp.name}`;
      if (imp.kind !== "func") {
        // V8 integration: global imports are refused; memory/table imports are created by the host.
        if (imp.kind === "memory" || imp.kind === "table") {
          throw new HostLoadError("UnableToInitializeCode", `harness does not emulate imported ${imp.kind} ${key}`);
        }
        throw new HostLoadError("UnableToInitializeCode", `Failed to load Wasm module due to a missing import: ${key}`);
      }
      const want = ENVOY_HOST_FUNCTIONS_0_2_1.get(key);
      if (want === undefined) {
        throw new HostLoadError("UnableToInitializeCode", `Failed to load Wasm module due to a missing import: ${key}`);
      }
      if (!sameFuncType(imp.type!, want)) {
        throw new HostLoadError(
          "UnableToInitializeCode",
          `Failed to load Wasm module due to an import type mismatch: ${key}, want: ${formatFuncType(imp.type!)}, but host exports: ${formatFuncType(want)}`,
        );
      }
      (imports[imp.module] ??= {})[imp.name] = this.hostFunction(imp.module, imp.name);
    }
    return imports;
  }

  private getFunctions(): void {
    for (const e of this.compiled.sections.exports) {
      if (e.kind !== "func") continue;
      const want = ENVOY_MODULE_FUNCTIONS_0_2_1.get(e.name);
      if (want === undefined) continue;
      if (!sameFuncType(e.type!, want)) {
        throw new HostLoadError(
          "UnableToInitializeCode",
          `Bad function signature for: ${e.name}, want: ${formatFuncType(want)}, but the module exports: ${formatFuncType(e.type!)}`,
        );
      }
      this.fns.set(e.name, this.instance.exports[e.name] as ModuleFn);
    }
    this.malloc = this.fns.get("malloc") ?? this.fns.get("proxy_on_memory_allocate") ?? null;
    if (this.malloc === null) throw new HostLoadError("MissingFunction", "Wasm module is missing malloc function.");
  }

  private startVm(): void {
    this.restricted = START_ALLOWED;
    this.inStart = true;
    try {
      if (this.fns.has("_initialize")) {
        this.callRaw("_initialize", this.vmContext, []);
        if (this.fns.has("main")) this.callRaw("main", this.vmContext, [0, 0]);
        else if (this.fns.has("__main_void")) this.callRaw("__main_void", this.vmContext, []);
      } else if (this.fns.has("_start")) {
        this.callRaw("_start", this.vmContext, []);
      }
    } finally {
      this.restricted = null;
      this.inStart = false;
    }
    if (this.failed !== null) throw new HostLoadError("StartFailed", `Failed to start base Wasm: ${this.failMessage}`);
  }

  has(fn: string): boolean {
    return this.fns.has(fn);
  }

  /** Calls an exported function directly (tests: idempotent _initialize). Same trap handling as callbacks. */
  invokeExport(fn: string, args: number[]): number | undefined {
    return this.callRaw(fn, this.vmContext, args);
  }

  // ---------------------------------------------------------------- contexts

  private allocContextId(): number {
    while (this.contexts.has(this.nextContextId)) this.nextContextId++;
    return this.nextContextId++;
  }

  /** WasmBase::start + ContextBase::onStart: a new root context, on_context_create(id, 0), on_vm_start. */
  startRoot(plugin: PluginSpec): RootState {
    const ctx = new HostContext(this.allocContextId(), "root", null);
    const root: RootState = {
      context: ctx,
      plugin,
      tickPeriodMs: 0,
      nextTickNs: 0n,
      pendingDone: false,
      deleted: false,
      status: { code: 0, message: "" },
    };
    this.contexts.set(ctx.id, ctx);
    this.roots.set(ctx.id, root);
    this.setPluginProperties(ctx, plugin);
    if (this.fns.has("proxy_on_context_create")) {
      this.callback("proxy_on_context_create", ctx, [ctx.id, 0]);
      ctx.created = true;
    }
    if (this.failed !== null) throw new HostLoadError("StartFailed", `Failed to start base Wasm: ${this.failMessage}`);
    if (this.fns.has("proxy_on_vm_start")) {
      const vmCfg = this.options.vmConfiguration ?? "";
      ctx.buffers.set(BufferType.VmConfiguration, new TextEncoder().encode(vmCfg));
      const ok = this.callback("proxy_on_vm_start", ctx, [ctx.id, Buffer.byteLength(vmCfg)]);
      if (this.failed !== null || ok === 0) throw new HostLoadError("StartFailed", "Failed to start base Wasm: proxy_on_vm_start returned false");
    }
    return root;
  }

  /** ContextBase::onConfigure; returns what the module returned (false rejects the plugin). */
  configureRoot(root: RootState): boolean {
    if (!this.fns.has("proxy_on_configure")) return true;
    const cfg = new TextEncoder().encode(root.plugin.configuration);
    root.context.buffers.set(BufferType.PluginConfiguration, cfg);
    try {
      const r = this.callback("proxy_on_configure", root.context, [root.context.id, cfg.length]);
      return this.failed === null && r !== 0;
    } finally {
      root.context.buffers.delete(BufferType.PluginConfiguration);
    }
  }

  newStreamContext(root: RootState, kind: "http" | "tcp"): HostContext {
    const ctx = new HostContext(this.allocContextId(), kind, root);
    this.contexts.set(ctx.id, ctx);
    this.setPluginProperties(ctx, root.plugin);
    return ctx;
  }

  /** ContextBase::onCreate: on_context_create(id, root id) once, before the first stream callback. */
  ensureCreated(ctx: HostContext): void {
    if (ctx.created || this.failed !== null) return;
    if (this.fns.has("proxy_on_context_create")) this.callback("proxy_on_context_create", ctx, [ctx.id, ctx.root!.context.id]);
    ctx.created = true;
  }

  removeContext(ctx: HostContext): void {
    this.contexts.delete(ctx.id);
  }

  private setPluginProperties(ctx: HostContext, plugin: PluginSpec): void {
    ctx.properties.set("plugin_name", plugin.name);
    ctx.properties.set("plugin_root_id", plugin.rootId);
    ctx.properties.set("plugin_vm_id", plugin.vmId ?? "");
  }

  // ---------------------------------------------------------------- calling the module

  /**
   * Calls a module callback the way ContextBase::on* does: the context becomes current,
   * traps fail the VM, and after-VM-call actions run when the outermost call returns.
   * Returns undefined if the VM has failed or the call trapped.
   */
  callback(fn: string, ctx: HostContext, args: number[]): number | undefined {
    if (this.failed !== null || !this.fns.has(fn)) return undefined;
    return this.callRaw(fn, ctx, args);
  }

  /** Like callback, and reports whether proxy_send_local_response asked to stop iteration. */
  callbackWithStop(fn: string, ctx: HostContext, args: number[]): { result: number | undefined; stopped: boolean } {
    const result = this.callback(fn, ctx, args);
    const stopped = this.stopNextIteration;
    this.stopNextIteration = false;
    return { result, stopped };
  }

  private callRaw(fn: string, ctx: HostContext, args: number[]): number | undefined {
    const f = this.fns.get(fn);
    if (f === undefined) return undefined;
    const savedCurrent = this.current;
    const savedEffective = this.effectiveId;
    this.current = ctx;
    this.effectiveId = 0;
    this.depth++;
    try {
      const r = f(...args);
      return typeof r === "number" ? r >>> 0 : undefined;
    } catch (e) {
      if (isTrap(e)) {
        this.fail("RuntimeError", `Function: ${fn} failed: ${(e as Error).message}`);
        return undefined;
      }
      throw e;
    } finally {
      this.current = savedCurrent;
      this.effectiveId = savedEffective;
      this.depth--;
      if (this.depth === 0) this.runAfterVmCallActions();
    }
  }

  private runAfterVmCallActions(): void {
    while (this.afterVmCall.length > 0) this.afterVmCall.shift()!();
  }

  private deferAfterVmCall(action: () => void): void {
    if (this.depth === 0) action();
    else this.afterVmCall.push(action);
  }

  fail(state: FailState, message: string): void {
    if (this.failed !== null) return;
    this.failed = state;
    this.failMessage = message;
    this.logs.push({ level: 5, message: `wasm VM failed: ${message}`, contextId: this.current.id });
  }

  // ---------------------------------------------------------------- memory

  private view: Uint8Array = new Uint8Array(0);
  private dataView: DataView = new DataView(new ArrayBuffer(0));
  /** Raw property path (latin1 of its bytes) -> dotted form; paths are few and repeat. */
  private readonly pathCache = new Map<string, string>();
  /** Encoded property values, per context and path (values are set before the stream starts). */
  private readonly encodedProps = new WeakMap<HostContext, Map<string, Uint8Array>>();

  /** A view of linear memory, renewed when the memory has grown (growth detaches the old buffer). */
  private bytes(): Uint8Array {
    if (this.view.buffer !== this.memory.buffer) {
      this.view = new Uint8Array(this.memory.buffer);
      this.dataView = new DataView(this.memory.buffer);
    }
    return this.view;
  }

  private dotted(ptr: number, len: number): string | null {
    const mem = this.bytes();
    if (ptr < 0 || len < 0 || ptr + len > mem.length) return null;
    const key = Buffer.from(mem.buffer, ptr, len).toString("latin1");
    let d = this.pathCache.get(key);
    if (d === undefined) {
      d = pathToDotted(mem.subarray(ptr, ptr + len));
      this.pathCache.set(key, d);
    }
    return d;
  }

  private propertyValue(ctx: HostContext, path: string): Uint8Array | undefined {
    const value = ctx.properties.get(path);
    if (value === undefined) return undefined;
    let cache = this.encodedProps.get(ctx);
    if (cache === undefined) {
      cache = new Map();
      this.encodedProps.set(ctx, cache);
    }
    let enc = cache.get(path);
    if (enc === undefined) {
      enc = propertyBytes(value);
      cache.set(path, enc);
    }
    return enc;
  }

  /** A copy of module memory [ptr, ptr+len), or null when out of bounds (getMemory). */
  read(ptr: number, len: number): Uint8Array | null {
    const mem = this.bytes();
    if (ptr < 0 || len < 0 || ptr + len > mem.length) return null;
    return mem.slice(ptr, ptr + len);
  }

  private readString(ptr: number, len: number): string | null {
    const b = this.read(ptr, len);
    return b === null ? null : new TextDecoder().decode(b);
  }

  private setWord(ptr: number, value: number): boolean {
    const mem = this.bytes();
    if (ptr < 0 || ptr + 4 > mem.length) return false;
    this.dataView.setUint32(ptr, value >>> 0, true);
    return true;
  }

  private setU64(ptr: number, value: bigint): boolean {
    const mem = this.bytes();
    if (ptr < 0 || ptr + 8 > mem.length) return false;
    this.dataView.setBigUint64(ptr, BigInt.asUintN(64, value), true);
    return true;
  }

  /** WasmBase::allocMemory: the module's allocator, with callbacks restricted; null on failure. */
  alloc(size: number): number | null {
    const saved = this.restricted;
    this.restricted = MALLOC_ALLOWED;
    let ptr: number | undefined;
    try {
      ptr = this.callRaw(this.fns.has("malloc") ? "malloc" : "proxy_on_memory_allocate", this.vmContext, [size]);
    } finally {
      this.restricted = saved;
    }
    if (ptr === undefined || ptr === 0) return null;
    if (ptr + size > this.bytes().length) {
      this.diagnostics.push(`allocator returned ${ptr} for ${size} bytes, past the end of memory`);
      return null;
    }
    return ptr;
  }

  /** WasmBase::copyToPointerSize: empty values are (0, 0) without an allocation. */
  private copyToPointerSize(value: Uint8Array, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (value.length > 0) {
      const p = this.alloc(value.length);
      if (p === null) return false;
      this.bytes().set(value, p);
      ptr = p;
    }
    return this.setWord(ptrPtr, ptr) && this.setWord(sizePtr, value.length);
  }

  // ---------------------------------------------------------------- host functions

  private contextOrEffective(): HostContext {
    if (this.effectiveId !== 0) {
      const c = this.contexts.get(this.effectiveId);
      if (c !== undefined) return c;
    }
    return this.current;
  }

  private hostFunction(module: string, name: string): HostFn {
    const key = `${module}.${name}`;
    const impl = module === "env" ? this.envFunction(name) : this.wasiFunction(name);
    const counter = { n: 0 };
    this.hostCallCounters.set(key, counter);
    return (...args) => {
      counter.n++;
      if (this.inStart) this.startCalls.push(key);
      if (this.restricted !== null && !this.restricted.has(key)) throw new HostTrap("restricted_callback");
      return impl(...args);
    };
  }

  private envFunction(name: string): HostFn {
    const n = (v: number | bigint | undefined): number => Number(v) >>> 0;
    switch (name) {
      case "proxy_log":
        return (level, ptr, size) => {
          const msg = this.readString(n(ptr), n(size));
          if (msg === null) return WasmResult.InvalidMemoryAccess;
          this.logs.push({ level: n(level), message: msg, contextId: this.contextOrEffective().id });
          return WasmResult.Ok;
        };
      case "proxy_get_log_level":
        return (ptr) => (this.setWord(n(ptr), this.options.logLevel ?? 2) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess);
      case "proxy_get_current_time_nanoseconds":
        return (ptr) => (this.setU64(n(ptr), this.options.now()) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess);
      case "proxy_set_tick_period_milliseconds":
        return (ms) => {
          const root = this.roots.get(this.contextOrEffective().rootContext().id);
          if (root === undefined) return WasmResult.BadArgument;
          root.tickPeriodMs = n(ms);
          root.nextTickNs = this.options.now() + BigInt(root.tickPeriodMs) * 1_000_000n;
          return WasmResult.Ok;
        };
      case "proxy_get_property":
        return (pathPtr, pathSize, pp, sp) => {
          const path = this.dotted(n(pathPtr), n(pathSize));
          if (path === null) return WasmResult.InvalidMemoryAccess;
          const value = this.propertyValue(this.contextOrEffective(), path);
          if (value === undefined) return WasmResult.NotFound;
          return this.copyToPointerSize(value, n(pp), n(sp)) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_set_property":
        return (kp, ks, vp, vs) => {
          const k = this.read(n(kp), n(ks));
          const v = this.read(n(vp), n(vs));
          if (k === null || v === null) return WasmResult.InvalidMemoryAccess;
          const ctx = this.contextOrEffective();
          const path = pathToDotted(k);
          ctx.properties.set(path, v);
          this.encodedProps.get(ctx)?.delete(path);
          return WasmResult.Ok;
        };
      case "proxy_get_buffer_status":
        return (type, lenPtr, flagsPtr) => {
          if (n(type) > BufferType.PluginConfiguration) return WasmResult.BadArgument;
          const buf = this.buffer(n(type));
          if (buf === undefined) return WasmResult.NotFound;
          return this.setWord(n(lenPtr), buf.length) && this.setWord(n(flagsPtr), 0) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_get_buffer_bytes":
        return (type, start, length, pp, sp) => {
          if (n(type) > BufferType.PluginConfiguration) return WasmResult.BadArgument;
          const buf = this.buffer(n(type));
          if (buf === undefined) return WasmResult.NotFound;
          const s = n(start);
          let len = n(length);
          if (s + len > 0xffffffff) return WasmResult.BadArgument;
          if (s > buf.length) len = 0;
          else if (s + len > buf.length) len = buf.length - s;
          if (len === 0) return this.setWord(n(pp), 0) && this.setWord(n(sp), 0) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
          return this.copyToPointerSize(buf.subarray(s, s + len), n(pp), n(sp)) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_set_buffer_bytes":
        return (type, start, length, dp, ds) => {
          if (n(type) > BufferType.PluginConfiguration) return WasmResult.BadArgument;
          const ctx = this.contextOrEffective();
          const t = n(type);
          const buf = this.buffer(t);
          if (buf === undefined) return WasmResult.NotFound;
          const data = this.read(n(dp), n(ds));
          if (data === null) return WasmResult.InvalidMemoryAccess;
          const s = n(start);
          const len = n(length);
          // Envoy's BufferBase::copyFrom: prepend, append or replace-all only.
          let next: Uint8Array;
          if (s === 0 && len === 0) next = concat(data, buf);
          else if (s === buf.length) next = concat(buf, data);
          else if (s === 0 && len >= buf.length) next = data;
          else return WasmResult.BadArgument;
          ctx.buffers.set(t, next);
          return WasmResult.Ok;
        };
      case "proxy_get_header_map_size":
        return (type, ptr) => {
          const map = this.headerMap(n(type));
          if (map === null) return WasmResult.BadArgument;
          let bytes = 0;
          for (const [k, v] of map) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
          return this.setWord(n(ptr), bytes) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_get_header_map_pairs":
        return (type, pp, sp) => {
          const map = this.headerMap(n(type));
          if (map === null) return WasmResult.BadArgument;
          const bytes = map.length === 0 ? new Uint8Array(0) : encodePairs(map);
          return this.copyToPointerSize(bytes, n(pp), n(sp)) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_set_header_map_pairs":
        return (type, ptr, size) => {
          const map = this.headerMap(n(type));
          if (map === null) return WasmResult.BadArgument;
          const raw = this.read(n(ptr), n(size));
          if (raw === null) return WasmResult.InvalidMemoryAccess;
          const pairs = this.pairsFromModule(raw, "proxy_set_header_map_pairs");
          map.splice(0, map.length, ...pairs.map(([k, v]) => [k.toLowerCase(), v] as [string, string]));
          return WasmResult.Ok;
        };
      case "proxy_get_header_map_value":
        return (type, kp, ks, pp, sp) => {
          const map = this.headerMap(n(type));
          if (map === null) return WasmResult.BadArgument;
          const key = this.readString(n(kp), n(ks));
          if (key === null) return WasmResult.InvalidMemoryAccess;
          const lower = key.toLowerCase();
          const values = map.filter(([k]) => k === lower).map(([, v]) => v);
          if (values.length === 0) return WasmResult.NotFound;
          // Envoy joins repeated headers with ",".
          return this.copyToPointerSize(new TextEncoder().encode(values.join(",")), n(pp), n(sp))
            ? WasmResult.Ok
            : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_add_header_map_value":
      case "proxy_replace_header_map_value":
        return (type, kp, ks, vp, vs) => {
          const map = this.headerMap(n(type));
          if (map === null) return WasmResult.BadArgument;
          const key = this.readString(n(kp), n(ks));
          const value = this.readString(n(vp), n(vs));
          if (key === null || value === null) return WasmResult.InvalidMemoryAccess;
          const lower = key.toLowerCase();
          if (name === "proxy_replace_header_map_value") {
            const i = map.findIndex(([k]) => k === lower);
            if (i >= 0) {
              map[i] = [lower, value];
              for (let j = map.length - 1; j > i; j--) if (map[j]![0] === lower) map.splice(j, 1);
              return WasmResult.Ok;
            }
          }
          map.push([lower, value]);
          return WasmResult.Ok;
        };
      case "proxy_remove_header_map_value":
        return (type, kp, ks) => {
          const map = this.headerMap(n(type));
          if (map === null) return WasmResult.BadArgument;
          const key = this.readString(n(kp), n(ks));
          if (key === null) return WasmResult.InvalidMemoryAccess;
          const lower = key.toLowerCase();
          for (let j = map.length - 1; j >= 0; j--) if (map[j]![0] === lower) map.splice(j, 1);
          return WasmResult.Ok;
        };
      case "proxy_send_local_response":
        return (status, dp, ds, bp, bs, hp, hs, grpc) => {
          const details = this.readString(n(dp), n(ds));
          const body = this.readString(n(bp), n(bs));
          const hdrs = this.read(n(hp), n(hs));
          if (details === null || body === null || hdrs === null) return WasmResult.InvalidMemoryAccess;
          const ctx = this.contextOrEffective();
          const headers = this.pairsFromModule(hdrs, "proxy_send_local_response");
          const g = Number(grpc) | 0;
          const reply: LocalReply = {
            status: n(status),
            details: details.replace(/\s/g, "_"),
            body,
            headers: headers.map(([k, v]) => [k.toLowerCase(), v]),
            grpcStatus: g >= 0 && g <= 16 ? g : null,
          };
          // Only HTTP filters have decoder callbacks; elsewhere Envoy ignores the call.
          if (ctx.kind === "http") this.deferAfterVmCall(() => this.localReplies.set(ctx.id, reply));
          this.stopNextIteration = true;
          return WasmResult.Ok;
        };
      case "proxy_continue_stream":
      case "proxy_close_stream":
        return (type) => {
          const t = n(type);
          if (t > StreamType.Upstream) return WasmResult.BadArgument;
          const ctx = this.contextOrEffective();
          const table = name === "proxy_close_stream" ? this.closeRequests : this.continueRequests;
          if (name === "proxy_continue_stream" && t === StreamType.Upstream) return WasmResult.Unimplemented;
          const applies = ctx.kind === "http" ? t <= StreamType.HttpResponse : ctx.kind === "tcp" ? t >= StreamType.Downstream : false;
          if (applies) {
            this.deferAfterVmCall(() => {
              const set = table.get(ctx.id) ?? new Set<number>();
              set.add(t);
              table.set(ctx.id, set);
            });
          }
          return WasmResult.Ok;
        };
      case "proxy_http_call":
        return (up, us, hp, hs, bp, bs, tp, ts, timeout, tokenPtr) => {
          const root = this.roots.get(this.contextOrEffective().rootContext().id);
          const cluster = this.readString(n(up), n(us));
          const body = this.read(n(bp), n(bs));
          const hdrRaw = this.read(n(hp), n(hs));
          const trlRaw = this.read(n(tp), n(ts));
          if (cluster === null || body === null || hdrRaw === null || trlRaw === null) return WasmResult.InvalidMemoryAccess;
          const headers = this.pairsFromModule(hdrRaw, "proxy_http_call headers");
          const trailers = this.pairsFromModule(trlRaw, "proxy_http_call trailers");
          if (!this.setWord(n(tokenPtr), 0)) return WasmResult.InvalidMemoryAccess;
          if (root === undefined) return WasmResult.BadArgument;
          if ((Number(timeout) | 0) < 0) return WasmResult.BadArgument;
          if (!(this.options.clusters?.has(cluster) ?? false)) return WasmResult.BadArgument;
          const has = (h: string): boolean => headers.some(([k]) => k.toLowerCase() === h);
          if (!has(":path") || !has(":method") || !has(":authority")) return WasmResult.BadArgument;
          const token = this.nextHttpToken++;
          this.httpCalls.set(token, {
            token,
            rootContextId: root.context.id,
            cluster,
            headers,
            body,
            trailers,
            timeoutMs: n(timeout),
            state: "pending",
          });
          this.setWord(n(tokenPtr), token);
          return WasmResult.Ok;
        };
      case "proxy_get_status":
        return (codePtr, pp, sp) => {
          const root = this.roots.get(this.contextOrEffective().rootContext().id);
          const st = root?.status ?? { code: 0, message: "" };
          if (!this.setWord(n(codePtr), st.code)) return WasmResult.InvalidMemoryAccess;
          return this.copyToPointerSize(new TextEncoder().encode(st.message), n(pp), n(sp)) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_define_metric":
        return (type, np, ns, idPtr) => {
          const t = n(type);
          if (t > MetricType.Histogram) return WasmResult.BadArgument;
          const metricName = this.readString(n(np), n(ns));
          if (metricName === null) return WasmResult.InvalidMemoryAccess;
          // Envoy returns the existing id for a name already defined in this VM.
          for (const [id, m] of this.metrics) if (m.name === metricName && m.type === t) return this.setWord(n(idPtr), id) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
          const id = (this.nextMetricId++ << 2) | t;
          this.metrics.set(id, { type: t, name: metricName, value: 0n, samples: [] });
          return this.setWord(n(idPtr), id) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_increment_metric":
        return (id, offset) => {
          const m = this.metrics.get(n(id));
          if (m === undefined) return WasmResult.NotFound;
          const off = BigInt(offset);
          if (m.type === MetricType.Counter) {
            if (off < 0n) return WasmResult.BadArgument;
            m.value += off;
          } else if (m.type === MetricType.Gauge) {
            m.value += off;
          } else return WasmResult.BadArgument;
          return WasmResult.Ok;
        };
      case "proxy_record_metric":
        return (id, value) => {
          const m = this.metrics.get(n(id));
          if (m === undefined) return WasmResult.NotFound;
          const v = BigInt.asUintN(64, BigInt(value));
          if (m.type === MetricType.Counter) m.value += v;
          else if (m.type === MetricType.Gauge) m.value = v;
          else m.samples.push(v);
          return WasmResult.Ok;
        };
      case "proxy_get_metric":
        return (id, ptr) => {
          const m = this.metrics.get(n(id));
          if (m === undefined) return WasmResult.NotFound;
          if (m.type === MetricType.Histogram) return WasmResult.BadArgument;
          return this.setU64(n(ptr), m.value) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_set_effective_context":
        return (id) => {
          if (!this.contexts.has(n(id))) return WasmResult.BadArgument;
          this.effectiveId = n(id);
          return WasmResult.Ok;
        };
      case "proxy_done":
        return () => {
          const root = this.roots.get(this.contextOrEffective().rootContext().id);
          if (root === undefined || !root.pendingDone) return WasmResult.NotFound;
          root.pendingDone = false;
          this.deferAfterVmCall(() => this.deleteRoot(root));
          return WasmResult.Ok;
        };
      case "proxy_get_shared_data":
        return (kp, ks, pp, sp, casPtr) => {
          const key = this.readString(n(kp), n(ks));
          if (key === null) return WasmResult.InvalidMemoryAccess;
          const entry = this.sharedData.get(key);
          if (entry === undefined) return WasmResult.NotFound;
          if (!this.copyToPointerSize(entry.value, n(pp), n(sp))) return WasmResult.InvalidMemoryAccess;
          return this.setWord(n(casPtr), entry.cas) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
        };
      case "proxy_set_shared_data":
        return (kp, ks, vp, vs, cas) => {
          const key = this.readString(n(kp), n(ks));
          const value = this.read(n(vp), n(vs));
          if (key === null || value === null) return WasmResult.InvalidMemoryAccess;
          const entry = this.sharedData.get(key);
          if (n(cas) !== 0 && entry !== undefined && entry.cas !== n(cas)) return WasmResult.CasMismatch;
          this.sharedData.set(key, { value, cas: this.nextCas++ });
          return WasmResult.Ok;
        };
      default:
        return () => {
          throw new HarnessUnsupportedError(`env.${name}`);
        };
    }
  }

  private wasiFunction(name: string): HostFn {
    const n = (v: number | bigint | undefined): number => Number(v) >>> 0;
    switch (name) {
      case "fd_write":
        return (fd, iovs, iovsLen, nwrittenPtr) => {
          const parts: Uint8Array[] = [];
          let total = 0;
          for (let i = 0; i < n(iovsLen); i++) {
            const iov = this.read(n(iovs) + i * 8, 8);
            if (iov === null) return WASI_EINVAL;
            const dv = new DataView(iov.buffer);
            const chunk = this.read(dv.getUint32(0, true), dv.getUint32(4, true));
            if (chunk === null) return WASI_EINVAL;
            parts.push(chunk);
            total += chunk.length;
          }
          if (n(fd) !== 1 && n(fd) !== 2) return WASI_EBADF;
          const text = new TextDecoder().decode(concat(...parts));
          this.logs.push({ level: n(fd) === 1 ? 2 : 4, message: text, contextId: this.contextOrEffective().id });
          return this.setWord(n(nwrittenPtr), total) ? WASI_ESUCCESS : WASI_EINVAL;
        };
      case "clock_time_get":
        return (_id, _precision, resultPtr) => (this.setU64(n(resultPtr), this.options.now()) ? WASI_ESUCCESS : WASI_EINVAL);
      case "random_get":
        return (ptr, len) => {
          if (n(len) > RANDOM_GET_MAX) return WASI_EINVAL;
          const mem = this.bytes();
          if (n(ptr) + n(len) > mem.length) return WASI_EINVAL;
          randomFillSync(mem, n(ptr), n(len));
          return WASI_ESUCCESS;
        };
      case "environ_sizes_get":
      case "args_sizes_get":
        return (countPtr, sizePtr) => (this.setWord(n(countPtr), 0) && this.setWord(n(sizePtr), 0) ? WASI_ESUCCESS : WASI_EINVAL);
      case "environ_get":
      case "args_get":
        return () => WASI_ESUCCESS;
      case "sched_yield":
        return () => WASI_ESUCCESS;
      case "proc_exit":
        return (code) => {
          // Envoy logs proc_exit and does not trap.
          this.logs.push({ level: 4, message: `proc_exit(${n(code)})`, contextId: this.contextOrEffective().id });
          return undefined;
        };
      default:
        return () => {
          throw new HarnessUnsupportedError(`wasi.${name}`);
        };
    }
  }

  private buffer(type: number): Uint8Array | undefined {
    const ctx = this.contextOrEffective();
    if (type === BufferType.VmConfiguration) return new TextEncoder().encode(this.options.vmConfiguration ?? "");
    if (type === BufferType.PluginConfiguration || type === BufferType.HttpCallResponseBody) {
      return ctx.rootContext().buffers.get(type);
    }
    return ctx.buffers.get(type);
  }

  private headerMap(type: number): Pairs | null {
    if (type > MapType.HttpCallResponseTrailers) return null;
    const ctx = this.contextOrEffective();
    const holder = type >= MapType.HttpCallResponseHeaders ? ctx.rootContext() : ctx;
    return holder.maps.get(type) ?? null;
  }

  private pairsFromModule(raw: Uint8Array, where: string): Pairs {
    const pairs = decodePairs(raw);
    if (pairs === null) {
      this.diagnostics.push(`${where}: malformed pairs buffer (${raw.length} bytes); Envoy would use an empty map`);
      return [];
    }
    return pairs;
  }

  private deleteRoot(root: RootState): void {
    if (root.deleted) return;
    root.deleted = true;
    if (root.context.created && this.failed === null) this.callback("proxy_on_delete", root.context, [root.context.id]);
    this.roots.delete(root.context.id);
    this.contexts.delete(root.context.id);
  }

  /** WasmBase::startShutdown for one plugin: on_done; on_delete now or after proxy_done. */
  shutdownRoot(root: RootState): "deleted" | "pending" {
    const r = this.failed === null ? this.callback("proxy_on_done", root.context, [root.context.id]) : 1;
    if (r === undefined || r !== 0) {
      this.deleteRoot(root);
      return "deleted";
    }
    root.pendingDone = true;
    return "pending";
  }

  /** Delivers an http call response or failure to the root context (Context::onHttpCallSuccess/Failure). */
  deliverHttpCallResponse(
    call: HttpCallRecord,
    response: { headers: Pairs; body: Uint8Array; trailers: Pairs } | { failure: string },
  ): void {
    if (call.state !== "pending") throw new Error(`http call ${call.token} already answered`);
    call.state = "answered";
    this.httpCalls.delete(call.token);
    const root = this.roots.get(call.rootContextId);
    if (root === undefined || this.failed !== null) return;
    const ctx = root.context;
    if ("failure" in response) {
      root.status = { code: 14 /* BrokenConnection */, message: "reset" };
      try {
        this.callback("proxy_on_http_call_response", ctx, [ctx.id, call.token, 0, 0, 0]);
      } finally {
        root.status = { code: 0, message: "" };
      }
      return;
    }
    ctx.maps.set(MapType.HttpCallResponseHeaders, response.headers);
    ctx.maps.set(MapType.HttpCallResponseTrailers, response.trailers);
    ctx.buffers.set(BufferType.HttpCallResponseBody, response.body);
    try {
      this.callback("proxy_on_http_call_response", ctx, [ctx.id, call.token, response.headers.length, response.body.length, response.trailers.length]);
    } finally {
      ctx.maps.delete(MapType.HttpCallResponseHeaders);
      ctx.maps.delete(MapType.HttpCallResponseTrailers);
      ctx.buffers.delete(BufferType.HttpCallResponseBody);
    }
  }

  /** Fires due ticks for every root up to `now` (Envoy re-arms the timer after each tick). */
  fireTicks(nowNs: bigint, setClock: (ns: bigint) => void): number {
    let fired = 0;
    for (;;) {
      let next: RootState | null = null;
      for (const r of this.roots.values()) {
        if (r.tickPeriodMs > 0 && !r.deleted && r.nextTickNs <= nowNs && (next === null || r.nextTickNs < next.nextTickNs)) next = r;
      }
      if (next === null || this.failed !== null) return fired;
      setClock(next.nextTickNs);
      next.nextTickNs += BigInt(next.tickPeriodMs) * 1_000_000n;
      this.callback("proxy_on_tick", next.context, [next.context.id]);
      fired++;
    }
  }

  /** Bytes of linear memory (module size in memory, for diagnostics). */
  memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }
}

function isTrap(e: unknown): boolean {
  return e instanceof WebAssembly.RuntimeError || e instanceof HostTrap || (e instanceof RangeError && /call stack/i.test(e.message));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
