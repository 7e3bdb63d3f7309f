// A proxy-wasm host that drives a module the way Envoy does: load (ABI detection, strict
// import linking, start), a configuration canary on a fresh VM before the real plugin
// start, HTTP streams and L4 connections with Envoy's status conversions, fail-closed
// behaviour after a trap (503 `wasm_fail_stream`, connections closed), ticks on a virtual
// or real clock, and proxy_http_call served by real HTTP servers behind named clusters.
import { request as httpRequest } from "node:http";
import { MapType, BufferType, PeerType } from "./envoy-abi.js";
import type { Pairs, PropertyValue } from "./encodings.js";
import type { HostContext, HttpCallRecord, LocalReply, PluginSpec, RootState } from "./contexts.js";
import { CompiledModule, HostLoadError, WasmVm } from "./vm.js";

export { HostLoadError, HarnessUnsupportedError } from "./vm.js";
export type { LocalReply, PluginSpec, HttpCallRecord } from "./contexts.js";
export type { Pairs, PropertyValue } from "./encodings.js";

export interface HostOptions {
  readonly vmConfiguration?: string;
  /** Cluster name -> base URL of a real HTTP server ("http://127.0.0.1:port"). */
  readonly clusters?: Readonly<Record<string, string>>;
  /** "virtual" (default): time moves only with advance(); "real": wall clock, ticks still via advance(). */
  readonly clock?: "virtual" | "real";
  /** Start of the virtual clock, ns since the epoch (default: now). */
  readonly startNs?: bigint;
  readonly logLevel?: number;
  /** Run the configuration canary on a fresh VM before configuring the real one (Envoy does). Default true. */
  readonly canary?: boolean;
}

/** The plugin's configure returned false (or trapped): Envoy rejects the filter configuration. */
export class PluginRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PluginRejectedError";
  }
}

export type HeadersStatus = "Continue" | "StopIteration" | "StopAllIterationAndWatermark";
export type NetworkStatus = "Continue" | "StopIteration";

export interface HeadersOutcome {
  readonly status: HeadersStatus;
  /** The local reply the filter (or the fail-closed path) sent, if any. */
  readonly localReply: LocalReply | null;
}

export class ProxyWasmHost {
  private nowNs: bigint;
  private readonly plugins: Plugin[] = [];

  private constructor(
    readonly compiled: CompiledModule,
    readonly vm: WasmVm,
    readonly options: HostOptions,
    startNs: bigint,
  ) {
    this.nowNs = startNs;
  }

  /** Loads the module like Envoy: throws HostLoadError with Envoy's message when it would refuse it. */
  static load(bytes: Uint8Array, options: HostOptions = {}): ProxyWasmHost {
    const compiled = CompiledModule.compile(bytes);
    const startNs = options.startNs ?? BigInt(Date.now()) * 1_000_000n;
    const ref: { host?: ProxyWasmHost } = {};
    const vm = new WasmVm(compiled, ProxyWasmHost.vmOptions(options, () => ref.host!.now()));
    const host = new ProxyWasmHost(compiled, vm, options, startNs);
    ref.host = host;
    vm.initialize();
    return host;
  }

  private static vmOptions(options: HostOptions, now: () => bigint) {
    return {
      now,
      clusters: new Set(Object.keys(options.clusters ?? {})),
      ...(options.vmConfiguration !== undefined ? { vmConfiguration: options.vmConfiguration } : {}),
      ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}),
    };
  }

  /** Wall clock anchored at load, advanced by the monotonic clock (never steps back). */
  private readonly realBase = { wallNs: BigInt(Date.now()) * 1_000_000n, hr: process.hrtime.bigint() };

  now(): bigint {
    if (this.options.clock === "real") return this.realBase.wallNs + (process.hrtime.bigint() - this.realBase.hr);
    return this.nowNs;
  }

  /**
   * Adds a plugin (a filter config): the canary VM (fresh instance, start + configure) must
   * accept the configuration, then the plugin's root context starts and is configured on the
   * real VM. Throws PluginRejectedError when Envoy would reject the config.
   */
  startPlugin(spec: PluginSpec): Plugin {
    if (this.options.canary ?? true) {
      const canary = new WasmVm(this.compiled, ProxyWasmHost.vmOptions(this.options, () => this.now()));
      try {
        canary.initialize();
        const root = canary.startRoot(spec);
        if (!canary.configureRoot(root)) throw new PluginRejectedError(`Failed to configure base Wasm plugin ${spec.name} (canary): ${canary.failMessage}`);
      } catch (e) {
        if (e instanceof HostLoadError) throw new PluginRejectedError(`canary failed: ${e.message}`);
        throw e;
      }
    }
    let root: RootState;
    try {
      root = this.vm.startRoot(spec);
    } catch (e) {
      if (e instanceof HostLoadError) throw new PluginRejectedError(e.message);
      throw e;
    }
    if (!this.vm.configureRoot(root)) throw new PluginRejectedError(`Failed to configure Wasm plugin ${spec.name}: ${this.vm.failMessage}`);
    const plugin = new Plugin(this, root);
    this.plugins.push(plugin);
    return plugin;
  }

  /** Moves the virtual clock forward and fires the ticks that fall due, in time order. */
  advance(ms: number): number {
    const target = this.now() + BigInt(Math.round(ms * 1e6));
    const fired = this.vm.fireTicks(target, (ns) => {
      if (this.options.clock !== "real") this.nowNs = ns;
    });
    if (this.options.clock !== "real") this.nowNs = target;
    return fired;
  }

  pendingHttpCalls(): HttpCallRecord[] {
    return [...this.vm.httpCalls.values()].filter((c) => c.state === "pending");
  }

  /** Answers a pending call by hand (tests of specific status codes) or as a failure (reset). */
  respondHttpCall(token: number, response: { status: number; headers?: Pairs; body?: string | Uint8Array } | "failure"): void {
    const call = this.vm.httpCalls.get(token);
    if (call === undefined) throw new Error(`no pending http call ${token}`);
    if (response === "failure") {
      this.vm.deliverHttpCallResponse(call, { failure: "reset" });
      return;
    }
    this.vm.deliverHttpCallResponse(call, {
      headers: [[":status", String(response.status)], ...(response.headers ?? [])],
      body: typeof response.body === "string" || response.body === undefined ? new TextEncoder().encode(response.body ?? "") : response.body,
      trailers: [],
    });
  }

  /**
   * Performs every pending proxy_http_call against the real server behind its cluster and
   * delivers the responses (or failures: connection refused, timeout) to the module, the way
   * Envoy's async client does. Returns the number of calls completed.
   */
  async dispatchHttpCalls(): Promise<number> {
    const calls = this.pendingHttpCalls();
    const results = await Promise.all(calls.map((c) => this.perform(c)));
    for (let i = 0; i < calls.length; i++) this.vm.deliverHttpCallResponse(calls[i]!, results[i]!);
    return calls.length;
  }

  private readonly performing = new Set<number>();

  /**
   * Starts every pending call not started yet and delivers each answer when it arrives, as
   * Envoy's async client does (long polls stay in flight while other calls complete).
   * Returns the number of calls started.
   */
  pumpHttpCalls(): number {
    let started = 0;
    for (const call of this.pendingHttpCalls()) {
      if (this.performing.has(call.token)) continue;
      this.performing.add(call.token);
      started++;
      void this.perform(call).then((res) => {
        this.performing.delete(call.token);
        if (call.state === "pending") this.vm.deliverHttpCallResponse(call, res);
      });
    }
    return started;
  }

  private perform(call: HttpCallRecord): Promise<{ headers: Pairs; body: Uint8Array; trailers: Pairs } | { failure: string }> {
    const base = new URL(this.options.clusters![call.cluster]!);
    const get = (name: string): string => call.headers.find(([k]) => k.toLowerCase() === name)?.[1] ?? "";
    const headers: Record<string, string> = { host: get(":authority") };
    for (const [k, v] of call.headers) if (!k.startsWith(":")) headers[k] = v;
    if (call.body.length > 0) headers["content-length"] = String(call.body.length);
    return new Promise((resolve) => {
      const req = httpRequest(
        { host: base.hostname, port: base.port, method: get(":method"), path: get(":path"), headers, timeout: call.timeoutMs || undefined },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const pairs: Pairs = [[":status", String(res.statusCode ?? 0)]];
            for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
            resolve({ headers: pairs, body: new Uint8Array(Buffer.concat(chunks)), trailers: [] });
          });
          res.on("error", (e) => resolve({ failure: e.message }));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => resolve({ failure: e.message }));
      req.end(Buffer.from(call.body));
    });
  }

  /** Value of a metric by name (Envoy scopes the module's metrics; names are as defined). */
  metric(name: string): bigint | undefined {
    for (const m of this.vm.metrics.values()) if (m.name === name) return m.value;
    return undefined;
  }

  get failed(): boolean {
    return this.vm.failed !== null;
  }
}

export class Plugin {
  constructor(
    readonly host: ProxyWasmHost,
    readonly root: RootState,
  ) {}

  get rootContextId(): number {
    return this.root.context.id;
  }

  httpStream(properties: Record<string, PropertyValue> = {}): HttpStream {
    const ctx = this.host.vm.newStreamContext(this.root, "http");
    for (const [k, v] of Object.entries(properties)) ctx.properties.set(k, v);
    return new HttpStream(this.host.vm, ctx, this.root.plugin.failOpen ?? false);
  }

  connection(properties: Record<string, PropertyValue> = {}): Connection {
    const ctx = this.host.vm.newStreamContext(this.root, "tcp");
    for (const [k, v] of Object.entries(properties)) ctx.properties.set(k, v);
    return new Connection(this.host.vm, ctx, this.root.plugin.failOpen ?? false);
  }

  /** Removes the plugin (listener drained): on_done, then on_delete now or after proxy_done. */
  shutdown(): "deleted" | "pending" {
    return this.host.vm.shutdownRoot(this.root);
  }

  get deleted(): boolean {
    return this.root.deleted;
  }
}

const FAIL_REPLY: LocalReply = { status: 503, details: "wasm_fail_stream", body: "", headers: [], grpcStatus: 14 };

/** One HTTP request through the filter (Envoy's Context as a StreamFilter). */
export class HttpStream {
  /** Headers as forwarded upstream after the filter ran (the filter may modify them). */
  requestHeaders: Pairs = [];
  localReply: LocalReply | null = null;
  private finished = false;

  constructor(
    readonly vm: WasmVm,
    readonly ctx: HostContext,
    readonly failOpen: boolean,
  ) {}

  get id(): number {
    return this.ctx.id;
  }

  /** decodeHeaders: on_context_create (first time), on_request_headers; Envoy's status conversion. */
  sendRequestHeaders(headers: Pairs, endOfStream: boolean): HeadersOutcome {
    const failed = this.checkFail();
    if (failed) return failed;
    this.vm.ensureCreated(this.ctx);
    const failedCreate = this.checkFail();
    if (failedCreate) return failedCreate;
    this.ctx.maps.set(MapType.RequestHeaders, headers.map(([k, v]) => [k.toLowerCase(), v]));
    const { result, stopped } = this.vm.callbackWithStop("proxy_on_request_headers", this.ctx, [this.ctx.id, headers.length, endOfStream ? 1 : 0]);
    const afterFail = this.checkFail();
    if (afterFail) return afterFail;
    this.requestHeaders = this.ctx.maps.get(MapType.RequestHeaders) ?? [];
    this.localReply = this.vm.localReplies.get(this.ctx.id) ?? null;
    this.vm.localReplies.delete(this.ctx.id);
    let status: HeadersStatus;
    if (result === undefined) status = "Continue";
    else if (stopped || result > 4) status = "StopAllIterationAndWatermark";
    else if (result === 0) status = "Continue";
    // ABI 0.2.x: StopIteration on headers is turned into StopAllIterationAndWatermark.
    else if (result === 1) status = "StopAllIterationAndWatermark";
    else status = "StopAllIterationAndWatermark";
    if (status === "Continue") this.ctx.maps.delete(MapType.RequestHeaders);
    return { status, localReply: this.localReply };
  }

  /** encodeHeaders (only when the filter exports on_response_headers). */
  sendResponseHeaders(headers: Pairs, endOfStream: boolean): HeadersOutcome {
    if (this.localReply !== null && this.localReply.details === FAIL_REPLY.details) return { status: "Continue", localReply: this.localReply };
    const failed = this.checkFail();
    if (failed) return failed;
    this.ctx.maps.set(MapType.ResponseHeaders, headers.map(([k, v]) => [k.toLowerCase(), v]));
    const { result, stopped } = this.vm.callbackWithStop("proxy_on_response_headers", this.ctx, [this.ctx.id, headers.length, endOfStream ? 1 : 0]);
    const afterFail = this.checkFail();
    if (afterFail) return afterFail;
    this.ctx.maps.delete(MapType.ResponseHeaders);
    return { status: result === undefined || (result === 0 && !stopped) ? "Continue" : "StopAllIterationAndWatermark", localReply: this.localReply };
  }

  /** End of the stream: access log, then on_done and on_delete (Envoy HTTP filter order). */
  complete(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.ctx.created && this.vm.failed === null) {
      this.vm.callback("proxy_on_log", this.ctx, [this.ctx.id]);
      this.vm.callback("proxy_on_done", this.ctx, [this.ctx.id]);
      this.vm.callback("proxy_on_delete", this.ctx, [this.ctx.id]);
    }
    this.vm.removeContext(this.ctx);
  }

  private checkFail(): HeadersOutcome | null {
    if (this.vm.failed === null) return null;
    if (this.failOpen) return { status: "Continue", localReply: null };
    if (!this.ctx.streamFailed) {
      this.ctx.streamFailed = true;
      this.localReply = FAIL_REPLY;
    }
    return { status: "StopAllIterationAndWatermark", localReply: this.localReply };
  }
}

/** One downstream TCP connection through the network filter (read + write filter). */
export class Connection {
  /** Bytes the filter let through to the upstream (tcp_proxy) and back to the client. */
  readonly toUpstream: Uint8Array[] = [];
  readonly toDownstream: Uint8Array[] = [];
  /** Why the connection closed, or null while open. */
  closedBy: "filter" | "wasm_fail" | "remote" | null = null;
  private finished = false;

  constructor(
    readonly vm: WasmVm,
    readonly ctx: HostContext,
    readonly failOpen: boolean,
  ) {}

  get id(): number {
    return this.ctx.id;
  }

  get open(): boolean {
    return this.closedBy === null;
  }

  /** onNewConnection: on_context_create + on_new_connection. */
  accept(): NetworkStatus {
    if (this.failClosed()) return "StopIteration";
    this.vm.ensureCreated(this.ctx);
    const r = this.vm.callback("proxy_on_new_connection", this.ctx, [this.ctx.id]);
    return this.finish(r);
  }

  /** onData (read filter): bytes from the client; returns what Envoy does with them. */
  downstreamData(data: Uint8Array, endOfStream = false): NetworkStatus {
    if (!this.open) throw new Error(`connection ${this.ctx.id} is closed`);
    if (this.failClosed()) return "StopIteration";
    this.ctx.buffers.set(BufferType.DownstreamData, data);
    const r = this.vm.callback("proxy_on_downstream_data", this.ctx, [this.ctx.id, data.length, endOfStream ? 1 : 0]);
    const status = this.finish(r);
    const out = this.ctx.buffers.get(BufferType.DownstreamData) ?? data;
    this.ctx.buffers.delete(BufferType.DownstreamData);
    if (status === "Continue" && this.open) this.toUpstream.push(out);
    return status;
  }

  /** onWrite (write filter): bytes from the upstream to the client. */
  upstreamData(data: Uint8Array, endOfStream = false): NetworkStatus {
    if (!this.open) throw new Error(`connection ${this.ctx.id} is closed`);
    if (this.failClosed()) return "StopIteration";
    this.ctx.buffers.set(BufferType.UpstreamData, data);
    const r = this.vm.callback("proxy_on_upstream_data", this.ctx, [this.ctx.id, data.length, endOfStream ? 1 : 0]);
    const status = this.finish(r);
    const out = this.ctx.buffers.get(BufferType.UpstreamData) ?? data;
    this.ctx.buffers.delete(BufferType.UpstreamData);
    if (status === "Continue" && this.open) this.toDownstream.push(out);
    return status;
  }

  /** The client closed the connection. */
  remoteClose(): void {
    if (this.open) this.closedBy = "remote";
    this.teardown(PeerType.Remote);
  }

  private finish(r: number | undefined): NetworkStatus {
    if (this.failClosed()) return "StopIteration";
    const closes = this.vm.closeRequests.get(this.ctx.id);
    if (closes !== undefined && closes.size > 0) {
      this.vm.closeRequests.delete(this.ctx.id);
      this.closedBy = "filter";
      // Envoy closes with FlushWrite, then the filter sees the local close and the context ends.
      this.teardown(PeerType.Local);
      return "StopIteration";
    }
    return r === undefined || r === 0 ? "Continue" : "StopIteration";
  }

  private failClosed(): boolean {
    if (this.vm.failed === null || this.failOpen) return false;
    if (this.open) {
      this.closedBy = "wasm_fail";
      this.ctx.streamFailed = true;
    }
    return true;
  }

  /** onEvent(close) -> on_downstream_connection_close, then done, log, delete (Context::onCloseTCP). */
  private teardown(peer: number): void {
    if (this.finished) return;
    this.finished = true;
    if (this.ctx.created && this.vm.failed === null) {
      this.vm.callback("proxy_on_downstream_connection_close", this.ctx, [this.ctx.id, peer]);
      this.vm.callback("proxy_on_done", this.ctx, [this.ctx.id]);
      this.vm.callback("proxy_on_log", this.ctx, [this.ctx.id]);
      this.vm.callback("proxy_on_delete", this.ctx, [this.ctx.id]);
    }
    this.vm.removeContext(this.ctx);
  }
}
