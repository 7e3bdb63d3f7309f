// Engine configuration from environment variables (documented in docs/operations.md).
// Every value is checked at startup; a bad value stops `zt serve` with a clear message
// rather than silently falling back to a default.
import { hostname } from "node:os";
import { resolve } from "node:path";
import type { RolloutMode } from "../../compiler/model.js";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface EngineConfig {
  /** Bind address of the API and health listeners. */
  readonly host: string;
  readonly port: number;
  readonly healthPort: number;
  readonly policyPath: string;
  readonly dataDir: string;
  /** Global rollout mode; a policy's per-destination rollout overrides it. */
  readonly mode: RolloutMode;
  readonly adminToken: string | null;
  readonly adminTokenFile: string | null;
  readonly auditDsn: string | null;
  readonly spireSocket: string | null;
  readonly maxBodyBytes: number;
  /** Largest policy document accepted by PUT /v1/policies/{name}. */
  readonly maxPolicyBytes: number;
  readonly maxBatch: number;
  /** How long a request waits for room in the audit queue before its decisions fail closed (0: never waits). */
  readonly auditWaitMs: number;
  readonly watchDebounceMs: number;
  readonly rescanIntervalMs: number;
  /** The policy build thread's heap limit, MB: a build that needs more fails (the old module keeps serving). */
  readonly buildMemoryMb: number;
  /** Build policies on the serving thread, as before issue 22: for the bench's before-figure only. */
  readonly buildInline: boolean;
  /** ZT_BUILD_TIMEOUT_MS: how long a policy or candidate build may run before its thread is stopped. */
  readonly buildTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly metricsMaxSeries: number;
  readonly logLevel: LogLevel;
  /** This replica's name in the shared state and the audit records' origin (pod name or hostname). */
  readonly replicaId: string;
  /** How often the replica checks the shared state's revision (the change feed's safety net). */
  readonly stateSyncIntervalMs: number;
  /** How often the replica records what it serves (GET /v1/replicas) and reads the live set. */
  readonly heartbeatIntervalMs: number;
  /** The mesh agents' /metrics URLs the console reads WireGuard peers from (none: not shown). */
  readonly consoleMeshMetrics: readonly string[];
  /** Per-connection limits of the API listener (docs/operations.md, "Connections"). */
  readonly http: {
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
    readonly stallTimeoutMs: number;
  };
  /**
   * The host name of the AccessRoute upstream (`to:`) through which the access proxy forwards to
   * this engine's console: the `aud` of its assertions. Set: the console accepts the proxy's sign-in.
   */
  readonly consoleProxyAudience: string | null;
}

export type ConfigResult = { ok: true; config: EngineConfig } | { ok: false; errors: string[] };

type Env = Readonly<Record<string, string | undefined>>;

function intVar(env: Env, name: string, dflt: number, min: number, max: number, errors: string[]): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return dflt;
  if (!/^\d+$/.test(raw.trim())) {
    errors.push(`${name}=${JSON.stringify(raw)}: expected an integer between ${min} and ${max}`);
    return dflt;
  }
  const n = Number(raw.trim());
  if (n < min || n > max) {
    errors.push(`${name}=${raw}: must be between ${min} and ${max}`);
    return dflt;
  }
  return n;
}

function strVar(env: Env, name: string): string | null {
  const v = env[name];
  return v === undefined || v === "" ? null : v;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], dflt: T, errors: string[]): T {
  const raw = strVar(env, name);
  if (raw === null) return dflt;
  const v = raw.trim().toLowerCase();
  if ((allowed as readonly string[]).includes(v)) return v as T;
  errors.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(", ")}`);
  return dflt;
}

/** Comma- or space-separated http(s) URLs without credentials (they would show on the console). */
function urlList(env: Env, name: string, errors: string[]): string[] {
  const raw = strVar(env, name);
  if (raw === null) return [];
  const out: string[] = [];
  for (const item of raw.split(/[\s,]+/).filter(Boolean)) {
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      errors.push(`${name}: ${JSON.stringify(item)} is not a URL`);
      continue;
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") errors.push(`${name}: ${JSON.stringify(item)} must be http:// or https://`);
    else if (u.username !== "" || u.password !== "") errors.push(`${name}: a URL must not carry credentials`);
    else out.push(u.toString());
  }
  return out;
}

const REPLICA_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): ConfigResult {
  const errors: string[] = [];
  const config: EngineConfig = {
    // Without a workload identity the engine may only serve plain HTTP on loopback, so that is
    // the default then; with an SVID (SPIRE or certificate files) it listens on every interface.
    host: strVar(env, "ZT_HOST") ?? (env.ZT_SPIRE_SOCKET || env.ZT_TLS_CERT ? "0.0.0.0" : "127.0.0.1"),
    // Port 0 is accepted so tests and benchmarks can ask the OS for a free port.
    port: intVar(env, "ZT_PORT", 8054, 0, 65535, errors),
    healthPort: intVar(env, "ZT_HEALTH_PORT", 8055, 0, 65535, errors),
    policyPath: resolve(cwd, strVar(env, "ZT_POLICY_PATH") ?? "./policies"),
    dataDir: resolve(cwd, strVar(env, "ZT_DATA_DIR") ?? "./data"),
    mode: oneOf(env, "ZT_MODE", ["enforce", "observe"] as const, "enforce", errors),
    adminToken: strVar(env, "ZT_ADMIN_TOKEN"),
    adminTokenFile: strVar(env, "ZT_ADMIN_TOKEN_FILE"),
    auditDsn: strVar(env, "ZT_AUDIT_DSN"),
    spireSocket: strVar(env, "ZT_SPIRE_SOCKET"),
    maxBodyBytes: intVar(env, "ZT_MAX_BODY_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024, errors),
    maxPolicyBytes: intVar(env, "ZT_MAX_POLICY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024, errors),
    maxBatch: intVar(env, "ZT_MAX_BATCH", 10_000, 1, 1_000_000, errors),
    auditWaitMs: intVar(env, "ZT_AUDIT_BACKPRESSURE_MS", 1_000, 0, 60_000, errors),
    watchDebounceMs: intVar(env, "ZT_WATCH_DEBOUNCE_MS", 200, 0, 60_000, errors),
    rescanIntervalMs: intVar(env, "ZT_RESCAN_INTERVAL_MS", 30_000, 0, 86_400_000, errors),
    buildMemoryMb: intVar(env, "ZT_BUILD_MEMORY_MB", 2_048, 32, 65_536, errors),
    buildInline: oneOf(env, "ZT_BUILD_INLINE", ["0", "1"] as const, "0", errors) === "1",
    buildTimeoutMs: intVar(env, "ZT_BUILD_TIMEOUT_MS", 300_000, 10, 86_400_000, errors),
    shutdownTimeoutMs: intVar(env, "ZT_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000, errors),
    metricsMaxSeries: intVar(env, "ZT_METRICS_MAX_SERIES", 2_000, 10, 1_000_000, errors),
    logLevel: oneOf(env, "ZT_LOG_LEVEL", ["debug", "info", "warn", "error"] as const, "info", errors),
    replicaId: strVar(env, "ZT_REPLICA_ID") ?? strVar(env, "POD_NAME") ?? hostname(),
    stateSyncIntervalMs: intVar(env, "ZT_STATE_SYNC_INTERVAL_MS", 3_000, 50, 600_000, errors),
    heartbeatIntervalMs: intVar(env, "ZT_HEARTBEAT_INTERVAL_MS", 5_000, 50, 600_000, errors),
    consoleMeshMetrics: urlList(env, "ZT_CONSOLE_MESH_METRICS", errors),
    http: {
      headersTimeoutMs: intVar(env, "ZT_HTTP_HEADERS_TIMEOUT_MS", 10_000, 1_000, 600_000, errors),
      requestTimeoutMs: intVar(env, "ZT_HTTP_REQUEST_TIMEOUT_MS", 30_000, 1_000, 3_600_000, errors),
      keepAliveTimeoutMs: intVar(env, "ZT_HTTP_KEEPALIVE_TIMEOUT_MS", 65_000, 1_000, 3_600_000, errors),
      stallTimeoutMs: intVar(env, "ZT_HTTP_STALL_TIMEOUT_MS", 30_000, 1_000, 3_600_000, errors),
    },
    consoleProxyAudience: strVar(env, "ZT_CONSOLE_PROXY_AUDIENCE"),
  };
  if (!REPLICA_ID.test(config.replicaId)) {
    errors.push(`ZT_REPLICA_ID=${JSON.stringify(config.replicaId)}: 1-253 characters of letters, digits, ".", "_", ":" and "-"`);
  }
  if (config.adminToken !== null && config.adminToken.length < 16) {
    errors.push("ZT_ADMIN_TOKEN: must be at least 16 characters");
  }
  if (config.adminToken !== null && config.adminTokenFile !== null) {
    errors.push("ZT_ADMIN_TOKEN and ZT_ADMIN_TOKEN_FILE are both set: choose one");
  }
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    errors.push(`ZT_HTTP_HEADERS_TIMEOUT_MS (${config.http.headersTimeoutMs}) must not exceed ZT_HTTP_REQUEST_TIMEOUT_MS (${config.http.requestTimeoutMs})`);
  }
  if (config.consoleProxyAudience !== null && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:.]+\]$/.test(config.consoleProxyAudience)) {
    errors.push(`ZT_CONSOLE_PROXY_AUDIENCE=${JSON.stringify(config.consoleProxyAudience)}: the host name (or address) of the AccessRoute's upstream, as in its to: URL`);
  }
  if (config.port !== 0 && config.port === config.healthPort) {
    errors.push(`ZT_PORT and ZT_HEALTH_PORT are both ${config.port}: they must differ`);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}
