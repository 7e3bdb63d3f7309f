// The host functions the filter imports: proxy-wasm ABI 0.2.1 (env.*) and one WASI call.
// Every name and signature here is one Envoy registers for a 0.2.1 module
// (proxy-wasm-cpp-host exports.h); test/proxywasm/imports.test.ts checks the built module.
// Pointers and sizes are i32 (wasm32); metric values are i64.

// ---- Status codes (WasmResult) ----
export const OK: i32 = 0;
export const NOT_FOUND: i32 = 1;
export const INVALID_MEMORY_ACCESS: i32 = 6;

// ---- Enums ----
export const LOG_TRACE: i32 = 0;
export const LOG_DEBUG: i32 = 1;
export const LOG_INFO: i32 = 2;
export const LOG_WARN: i32 = 3;
export const LOG_ERROR: i32 = 4;
export const LOG_CRITICAL: i32 = 5;

export const BUFFER_HTTP_CALL_RESPONSE_BODY: i32 = 4;
export const BUFFER_PLUGIN_CONFIGURATION: i32 = 7;
export const MAP_HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
export const STREAM_DOWNSTREAM: i32 = 2;
export const METRIC_COUNTER: i32 = 0;
export const METRIC_GAUGE: i32 = 1;

// ---- env ----
// @ts-ignore: decorator
@external("env", "proxy_log")
export declare function proxy_log(level: i32, ptr: usize, size: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_current_time_nanoseconds")
export declare function proxy_get_current_time_nanoseconds(retTime: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_set_tick_period_milliseconds")
export declare function proxy_set_tick_period_milliseconds(ms: u32): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_buffer_bytes")
export declare function proxy_get_buffer_bytes(type: i32, start: u32, maxSize: u32, retPtr: usize, retSize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_header_map_value")
export declare function proxy_get_header_map_value(type: i32, keyPtr: usize, keySize: usize, retPtr: usize, retSize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_get_property")
export declare function proxy_get_property(pathPtr: usize, pathSize: usize, retPtr: usize, retSize: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_send_local_response")
export declare function proxy_send_local_response(
  status: u32,
  detailsPtr: usize,
  detailsSize: usize,
  bodyPtr: usize,
  bodySize: usize,
  headersPtr: usize,
  headersSize: usize,
  grpcStatus: i32,
): i32;

// @ts-ignore: decorator
@external("env", "proxy_close_stream")
export declare function proxy_close_stream(streamType: i32): i32;

// @ts-ignore: decorator
@external("env", "proxy_http_call")
export declare function proxy_http_call(
  upstreamPtr: usize,
  upstreamSize: usize,
  headersPtr: usize,
  headersSize: usize,
  bodyPtr: usize,
  bodySize: usize,
  trailersPtr: usize,
  trailersSize: usize,
  timeoutMs: u32,
  retToken: usize,
): i32;

// @ts-ignore: decorator
@external("env", "proxy_define_metric")
export declare function proxy_define_metric(type: i32, namePtr: usize, nameSize: usize, retId: usize): i32;

// @ts-ignore: decorator
@external("env", "proxy_increment_metric")
export declare function proxy_increment_metric(id: u32, offset: i64): i32;

// @ts-ignore: decorator
@external("env", "proxy_record_metric")
export declare function proxy_record_metric(id: u32, value: i64): i32;

// @ts-ignore: decorator
@external("env", "proxy_set_effective_context")
export declare function proxy_set_effective_context(contextId: u32): i32;

// @ts-ignore: decorator
@external("env", "proxy_done")
export declare function proxy_done(): i32;

// ---- WASI ----
// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "random_get")
export declare function random_get(ptr: usize, len: usize): i32;
