// The Envoy side: the HTTP and network Wasm filters (FAIL_CLOSED, V8) loading the module
// from a local file or from a remote http_uri checked against its sha256, and the cluster
// that reaches the engine (module fetch and audit ingest).
import type { PluginConfiguration } from "./plugin-config.js";

export type FilterType = "http" | "network";

export type ModuleSource = { kind: "local"; filename: string } | { kind: "remote"; url: string; sha256: string; cluster: string };

export interface EngineEndpoint {
  readonly cluster: string;
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

export interface EnvoyFragmentOptions {
  readonly types: readonly FilterType[];
  readonly name: string;
  readonly rootId: string;
  readonly vmId: string;
  readonly source: ModuleSource;
  readonly configuration: PluginConfiguration;
  /** Emitted as a cluster when set (needed for a remote module and for audit ingest). */
  readonly engine?: EngineEndpoint;
  /** Envoy before 1.34 has no `failure_policy`; its `fail_open: false` is the same fail-closed behaviour. */
  readonly legacyFailOpenField?: boolean;
}

const TYPE_URL: Record<FilterType, { filter: string; config: string }> = {
  http: { filter: "envoy.filters.http.wasm", config: "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm" },
  network: { filter: "envoy.filters.network.wasm", config: "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm" },
};

function code(source: ModuleSource): Record<string, unknown> {
  if (source.kind === "local") return { local: { filename: source.filename } };
  return {
    remote: {
      http_uri: { uri: source.url, cluster: source.cluster, timeout: "10s" },
      sha256: source.sha256,
      retry_policy: { num_retries: 5 },
    },
  };
}

export function wasmFilter(type: FilterType, o: EnvoyFragmentOptions): Record<string, unknown> {
  return {
    name: TYPE_URL[type].filter,
    typed_config: {
      "@type": TYPE_URL[type].config,
      config: {
        name: o.name,
        root_id: o.rootId,
        configuration: {
          "@type": "type.googleapis.com/google.protobuf.StringValue",
          value: JSON.stringify(o.configuration),
        },
        // A VM that cannot load or that traps denies (503 / closed connection): fail closed.
        ...(o.legacyFailOpenField ? { fail_open: false } : { failure_policy: "FAIL_CLOSED" }),
        vm_config: {
          vm_id: o.vmId,
          runtime: "envoy.wasm.runtime.v8",
          code: code(o.source),
        },
      },
    },
  };
}

export function engineCluster(e: EngineEndpoint): Record<string, unknown> {
  const cluster: Record<string, unknown> = {
    name: e.cluster,
    type: "STRICT_DNS",
    connect_timeout: "5s",
    load_assignment: {
      cluster_name: e.cluster,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: e.host, port_value: e.port } } } }] }],
    },
  };
  if (e.tls) {
    cluster["transport_socket"] = {
      name: "envoy.transport_sockets.tls",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        sni: e.host,
      },
    };
  }
  return cluster;
}

/**
 * The fragment: `http_filters` (place before envoy.filters.http.router),
 * `network_filters` (place before envoy.filters.network.tcp_proxy) and `clusters`.
 */
export function envoyFragment(o: EnvoyFragmentOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (o.types.includes("http")) out["http_filters"] = [wasmFilter("http", o)];
  if (o.types.includes("network")) out["network_filters"] = [wasmFilter("network", o)];
  if (o.engine) out["clusters"] = [engineCluster(o.engine)];
  return out;
}
