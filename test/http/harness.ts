// Starts a real engine in-process on 127.0.0.1 with free ports and temporary directories,
// and talks to it over real HTTP.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../host/common/config.js";
import { silentLogger } from "../../host/common/logger.js";
import { type AuditHandle, type EngineHandle, type EngineOptions, startEngine } from "../../host/http/server.js";
import { POLICIES_DIR } from "../support/seed.js";
import { jsonlAudit, type JsonlAuditSink } from "./jsonl-sink.js";
import type { Decision } from "../../host/engine/decide.js";
import { backendFor, type StateDatabase, stateDatabase } from "../support/state-db.js";

export const TOKEN = "test-admin-token-0123456789abcdef";
export const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";

export interface TestEngine extends EngineHandle {
  dir: string;
  policyDir: string;
  dataDir: string;
  sink: JsonlAuditSink | null;
  /** The shared state's database, when the engine has one. */
  db: StateDatabase | null;
  /** close() and remove the temporary directory. */
  dispose(): Promise<void>;
}

export interface TestEngineOptions {
  env?: Record<string, string>;
  /** Reuse directories (restart tests). */
  dir?: string;
  /** Copy the seed policies into the policy directory (default true). */
  seedPolicies?: boolean;
  audit?: (dir: string) => Promise<AuditHandle> | AuditHandle;
  /** Extra engine options (identity hooks...). */
  engine?: Partial<EngineOptions>;
  /**
   * The shared state in PostgreSQL: a fresh database (default), one to share with other engines
   * (restarts, replicas), or false for an engine that serves its policy files alone.
   */
  state?: boolean | StateDatabase;
}

export async function startTestEngine(opts: TestEngineOptions = {}): Promise<TestEngine> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "zt-host-"));
  // As root, embedded PostgreSQL runs as zt-postgres: a traversable directory keeps its cluster
  // here (in the temporary directory, removed with it) instead of in /var/lib/zt-postgres.
  chmodSync(dir, 0o711);
  const policyDir = join(dir, "policies");
  const dataDir = join(dir, "data");
  if (!opts.dir) {
    mkdirSync(policyDir, { recursive: true });
    if (opts.seedPolicies ?? true) cpSync(POLICIES_DIR, policyDir, { recursive: true });
  }
  const cfg = loadConfig({
    ZT_HOST: "127.0.0.1",
    ZT_PORT: "0",
    ZT_HEALTH_PORT: "0",
    ZT_POLICY_PATH: policyDir,
    ZT_DATA_DIR: dataDir,
    ZT_WATCH_DEBOUNCE_MS: "50",
    ZT_SHUTDOWN_TIMEOUT_MS: "5000",
    ZT_REPLICA_ID: "test",
    ZT_STATE_SYNC_INTERVAL_MS: "200",
    ZT_HEARTBEAT_INTERVAL_MS: "200",
    ...opts.env,
  });
  if (!cfg.ok) throw new Error(cfg.errors.join("; "));
  mkdirSync(join(dir, "audit"), { recursive: true });
  const audit = opts.audit ? await opts.audit(dir) : jsonlAudit(join(dir, "audit", "audit.jsonl"));
  const db = opts.state === false ? null : opts.state === undefined || opts.state === true ? await stateDatabase() : opts.state;
  let engine: EngineHandle;
  try {
    engine = await startEngine({ config: cfg.config, audit, log: silentLogger, adminToken: TOKEN, state: db ? backendFor(db) : null, ...opts.engine });
  } catch (e) {
    // A start that fails (tests of refused configurations) leaves nothing behind.
    await audit.close();
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const sink = opts.audit ? null : (audit.sink as JsonlAuditSink);
  return {
    ...engine,
    close: engine.close,
    dir,
    policyDir,
    dataDir,
    sink,
    db,
    async dispose() {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function call<T = unknown>(base: string, method: string, path: string, opts: { body?: unknown; raw?: string | Uint8Array; token?: string | null; headers?: Record<string, string> } = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token === undefined ? null : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | Uint8Array | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await fetch(base + path, { method, headers, body: body as BodyInit | undefined });
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get("content-type") ?? "").includes("json") && text.length > 0) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

export function svc(src: string, dst: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { source: { spiffe_id: H + src, ...extra }, destination: { spiffe_id: H + dst, port } };
}

export function op(roles: string[], service: string, action: string, mfa = false, incident?: string): Record<string, unknown> {
  return { operator: { subject: "alice@hanzo.ai", roles, mfa, ...(incident !== undefined ? { incident } : {}) }, target: { service, action } };
}

/** The JSON of one decision, as the engine defines it. */
export type DecisionBody = Decision;
