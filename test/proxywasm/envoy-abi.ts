// What Envoy's host library (proxy-wasm-cpp-host, include/proxy-wasm/exports.h and
// src/wasm.cc registerCallbacks/getFunctions) registers for a proxy-wasm 0.2.1 module:
// the importable host functions with their Wasm signatures, and the signatures it requires
// of the module's exports. "Word" is i32 on wasm32; int64_t/uint64_t parameters are i64.
import type { FuncType, ValType } from "./wasm-sections.js";

const I = "i32" as const;
const L = "i64" as const;

function sig(params: ValType[], results: ValType[] = [I]): FuncType {
  return { params, results };
}
function words(n: number): ValType[] {
  return Array.from({ length: n }, () => I);
}

/** env.* host functions registered for every ABI version (FOR_ALL_HOST_FUNCTIONS + two emscripten helpers). */
const ENV_COMMON: Record<string, FuncType> = {
  pthread_equal: sig(words(2)),
  emscripten_notify_memory_growth: sig(words(1), []),
  proxy_log: sig(words(3)),
  proxy_get_status: sig(words(3)),
  proxy_set_property: sig(words(4)),
  proxy_get_property: sig(words(4)),
  proxy_send_local_response: sig(words(8)),
  proxy_get_shared_data: sig(words(5)),
  proxy_set_shared_data: sig(words(5)),
  proxy_register_shared_queue: sig(words(3)),
  proxy_resolve_shared_queue: sig(words(5)),
  proxy_dequeue_shared_queue: sig(words(3)),
  proxy_enqueue_shared_queue: sig(words(3)),
  proxy_get_header_map_value: sig(words(5)),
  proxy_add_header_map_value: sig(words(5)),
  proxy_replace_header_map_value: sig(words(5)),
  proxy_remove_header_map_value: sig(words(3)),
  proxy_get_header_map_pairs: sig(words(3)),
  proxy_set_header_map_pairs: sig(words(3)),
  proxy_get_header_map_size: sig(words(2)),
  proxy_get_buffer_status: sig(words(3)),
  proxy_get_buffer_bytes: sig(words(5)),
  proxy_set_buffer_bytes: sig(words(5)),
  proxy_http_call: sig(words(10)),
  proxy_grpc_call: sig(words(12)),
  proxy_grpc_stream: sig(words(9)),
  proxy_grpc_close: sig(words(1)),
  proxy_grpc_cancel: sig(words(1)),
  proxy_grpc_send: sig(words(4)),
  proxy_set_tick_period_milliseconds: sig(words(1)),
  proxy_get_current_time_nanoseconds: sig(words(1)),
  proxy_define_metric: sig(words(4)),
  proxy_increment_metric: sig([I, L]),
  proxy_record_metric: sig([I, L]),
  proxy_get_metric: sig(words(2)),
  proxy_set_effective_context: sig(words(1)),
  proxy_done: sig([]),
  proxy_call_foreign_function: sig(words(6)),
};

/** env.* functions registered only for ABI 0.2.1 (0.1.0's get_configuration, continue_request... are not). */
const ENV_0_2_1: Record<string, FuncType> = {
  proxy_continue_stream: sig(words(1)),
  proxy_close_stream: sig(words(1)),
  proxy_get_log_level: sig(words(1)),
};

/** FOR_ALL_WASI_FUNCTIONS, registered under both wasi_snapshot_preview1 and wasi_unstable. */
const WASI: Record<string, FuncType> = {
  fd_write: sig(words(4)),
  fd_read: sig(words(4)),
  fd_seek: sig([I, L, I, I]),
  fd_close: sig(words(1)),
  fd_fdstat_get: sig(words(2)),
  fd_fdstat_set_flags: sig(words(2)),
  fd_fdstat_set_rights: sig([I, L, L]),
  environ_get: sig(words(2)),
  environ_sizes_get: sig(words(2)),
  args_get: sig(words(2)),
  args_sizes_get: sig(words(2)),
  clock_time_get: sig([I, L, I]),
  clock_res_get: sig(words(2)),
  fd_advise: sig([I, L, L, I]),
  fd_allocate: sig([I, L, L]),
  fd_datasync: sig(words(1)),
  fd_filestat_set_size: sig([I, L]),
  fd_filestat_set_times: sig([I, L, L, I]),
  fd_pread: sig([I, I, I, L, I]),
  fd_pwrite: sig([I, I, I, L, I]),
  fd_readdir: sig([I, I, I, L, I]),
  fd_renumber: sig(words(2)),
  fd_sync: sig(words(1)),
  fd_tell: sig(words(2)),
  path_create_directory: sig(words(3)),
  path_filestat_set_times: sig([I, I, I, I, L, L, I]),
  path_link: sig(words(6)),
  path_readlink: sig(words(6)),
  path_remove_directory: sig(words(3)),
  path_rename: sig(words(6)),
  path_symlink: sig(words(4)),
  path_unlink_file: sig(words(3)),
  sock_accept: sig(words(3)),
  sock_recv: sig(words(6)),
  sock_send: sig(words(5)),
  sock_shutdown: sig(words(2)),
  random_get: sig(words(2)),
  sched_yield: sig([]),
  poll_oneoff: sig(words(4)),
  proc_exit: sig(words(1), []),
  path_open: sig([I, I, I, I, I, L, L, I, I]),
  fd_prestat_get: sig(words(2)),
  fd_prestat_dir_name: sig(words(3)),
  path_filestat_get: sig(words(5)),
  fd_filestat_get: sig(words(2)),
};

/** Every "module.name" Envoy can link for a proxy-wasm 0.2.1 module, with its signature. */
export const ENVOY_HOST_FUNCTIONS_0_2_1: ReadonlyMap<string, FuncType> = new Map<string, FuncType>([
  ...Object.entries(ENV_COMMON).map(([n, t]) => [`env.${n}`, t] as [string, FuncType]),
  ...Object.entries(ENV_0_2_1).map(([n, t]) => [`env.${n}`, t] as [string, FuncType]),
  ...Object.entries(WASI).map(([n, t]) => [`wasi_snapshot_preview1.${n}`, t] as [string, FuncType]),
  ...Object.entries(WASI).map(([n, t]) => [`wasi_unstable.${n}`, t] as [string, FuncType]),
]);

/** ABI-0.1.0-only names: present in Envoy, but not registered for a 0.2.1 module. */
export const ABI_0_1_0_ONLY = ["proxy_get_configuration", "proxy_continue_request", "proxy_continue_response", "proxy_clear_route_cache"];

/**
 * Callbacks Envoy looks up in the module (WasmBase::getFunctions) with the signature it
 * requires; a present export with another signature fails the load ("Bad function signature").
 * WasmCallVoid<N> = (i32 x N) -> (); WasmCallWord<N> = (i32 x N) -> i32.
 */
export const ENVOY_MODULE_FUNCTIONS_0_2_1: ReadonlyMap<string, FuncType> = new Map<string, FuncType>([
  ["_initialize", sig([], [])],
  ["_start", sig([], [])],
  ["main", sig(words(2))],
  ["__main_void", sig([])],
  ["malloc", sig(words(1))],
  ["proxy_on_memory_allocate", sig(words(1))],
  ["proxy_validate_configuration", sig(words(2))],
  ["proxy_on_vm_start", sig(words(2))],
  ["proxy_on_configure", sig(words(2))],
  ["proxy_on_tick", sig(words(1), [])],
  ["proxy_on_context_create", sig(words(2), [])],
  ["proxy_on_new_connection", sig(words(1))],
  ["proxy_on_downstream_data", sig(words(3))],
  ["proxy_on_upstream_data", sig(words(3))],
  ["proxy_on_downstream_connection_close", sig(words(2), [])],
  ["proxy_on_upstream_connection_close", sig(words(2), [])],
  ["proxy_on_request_headers", sig(words(3))],
  ["proxy_on_request_body", sig(words(3))],
  ["proxy_on_request_trailers", sig(words(2))],
  ["proxy_on_request_metadata", sig(words(2))],
  ["proxy_on_response_headers", sig(words(3))],
  ["proxy_on_response_body", sig(words(3))],
  ["proxy_on_response_trailers", sig(words(2))],
  ["proxy_on_response_metadata", sig(words(2))],
  ["proxy_on_http_call_response", sig(words(5), [])],
  ["proxy_on_grpc_receive", sig(words(3), [])],
  ["proxy_on_grpc_close", sig(words(3), [])],
  ["proxy_on_grpc_receive_initial_metadata", sig(words(3), [])],
  ["proxy_on_grpc_receive_trailing_metadata", sig(words(3), [])],
  ["proxy_on_queue_ready", sig(words(2), [])],
  ["proxy_on_foreign_function", sig(words(3), [])],
  ["proxy_on_done", sig(words(1))],
  ["proxy_on_log", sig(words(1), [])],
  ["proxy_on_delete", sig(words(1), [])],
]);

export const ABI_VERSION_EXPORTS = ["proxy_abi_version_0_1_0", "proxy_abi_version_0_2_0", "proxy_abi_version_0_2_1"] as const;
export type AbiVersion = "0.1.0" | "0.2.0" | "0.2.1";

/**
 * Host calls allowed while `_initialize`/`main`/`_start` run (WasmBase::startVm); any other
 * host function traps with "restricted_callback".
 */
export const START_ALLOWED: ReadonlySet<string> = new Set([
  "env.emscripten_notify_memory_growth",
  "env.proxy_log",
  ...[
    "fd_write",
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "poll_oneoff",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_advise",
    "fd_allocate",
    "fd_datasync",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_pwrite",
    "fd_readdir",
    "fd_renumber",
    "fd_sync",
    "fd_tell",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
  ].flatMap((n) => [`wasi_unstable.${n}`, `wasi_snapshot_preview1.${n}`]),
]);

/** Host calls allowed inside the module's allocator (WasmBase::allocMemory). */
export const MALLOC_ALLOWED: ReadonlySet<string> = new Set([
  "env.proxy_log",
  ...["fd_write", "clock_time_get", "poll_oneoff"].flatMap((n) => [`wasi_unstable.${n}`, `wasi_snapshot_preview1.${n}`]),
]);

export const WasmResult = {
  Ok: 0,
  NotFound: 1,
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  InvalidMemoryAccess: 6,
  Empty: 7,
  CasMismatch: 8,
  InternalFailure: 10,
  Unimplemented: 12,
} as const;

export const MapType = {
  RequestHeaders: 0,
  RequestTrailers: 1,
  ResponseHeaders: 2,
  ResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4,
  GrpcReceiveTrailingMetadata: 5,
  HttpCallResponseHeaders: 6,
  HttpCallResponseTrailers: 7,
} as const;

export const BufferType = {
  HttpRequestBody: 0,
  HttpResponseBody: 1,
  DownstreamData: 2,
  UpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
} as const;

export const StreamType = { HttpRequest: 0, HttpResponse: 1, Downstream: 2, Upstream: 3 } as const;
export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const;
export const LogLevel = { Trace: 0, Debug: 1, Info: 2, Warn: 3, Error: 4, Critical: 5 } as const;
/** Envoy's CloseType passed to proxy_on_*_connection_close. */
export const PeerType = { Unknown: 0, Local: 1, Remote: 2 } as const;
