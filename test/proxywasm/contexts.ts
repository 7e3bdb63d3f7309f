// The host-side state of proxy-wasm contexts, as Envoy's ContextBase keeps it: id, parent
// root, the plugin it belongs to, properties, header maps and buffers that are readable
// only while the callback that exposes them runs.
import type { Pairs, PropertyValue } from "./encodings.js";

export interface PluginSpec {
  /** Envoy `config.name`. */
  readonly name: string;
  /** Envoy `config.root_id`; selects the root context inside the module. */
  readonly rootId: string;
  readonly vmId?: string;
  /** The plugin configuration (buffer 7), readable only inside proxy_on_configure. */
  readonly configuration: string;
  /** Envoy `failure_policy: FAIL_OPEN`; default FAIL_CLOSED. */
  readonly failOpen?: boolean;
}

export interface LocalReply {
  readonly status: number;
  readonly details: string;
  readonly body: string;
  readonly headers: Pairs;
  /** null when the module passed a value outside 0..16 (no grpc-status). */
  readonly grpcStatus: number | null;
}

export type ContextKind = "vm" | "root" | "http" | "tcp";

export class HostContext {
  /** Properties visible to proxy_get_property (dotted paths). */
  readonly properties = new Map<string, PropertyValue>();
  /** Maps readable now, by MapType; set/cleared around the callbacks that expose them. */
  readonly maps = new Map<number, Pairs>();
  /** Buffers readable now, by BufferType. */
  readonly buffers = new Map<number, Uint8Array>();
  /** proxy_on_context_create has run for this context. */
  created = false;
  /** Set when the host gave up on the stream (trap, fail closed). */
  streamFailed = false;

  constructor(
    readonly id: number,
    readonly kind: ContextKind,
    readonly root: RootState | null,
  ) {}

  /** The root context this context belongs to (itself for a root). */
  rootContext(): HostContext {
    return this.root?.context ?? this;
  }
}

export interface HttpCallRecord {
  readonly token: number;
  readonly rootContextId: number;
  readonly cluster: string;
  readonly headers: Pairs;
  readonly body: Uint8Array;
  readonly trailers: Pairs;
  readonly timeoutMs: number;
  state: "pending" | "answered";
}

export interface RootState {
  readonly context: HostContext;
  readonly plugin: PluginSpec;
  tickPeriodMs: number;
  nextTickNs: bigint;
  /** on_done returned 0: waiting for proxy_done. */
  pendingDone: boolean;
  deleted: boolean;
  /** proxy_get_status: code and message of the last failed callout. */
  status: { code: number; message: string };
}

export interface MetricState {
  readonly type: number;
  readonly name: string;
  value: bigint;
  readonly samples: bigint[];
}
