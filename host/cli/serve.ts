// `zt serve`: the policy engine. Configuration comes from the environment (docs/operations.md);
// the process runs until SIGTERM or SIGINT, then drains and flushes the audit trail.
// Identity (docs/identity.md): with ZT_SPIRE_SOCKET or ZT_TLS_* the API is served over mTLS
// only; without them, plain HTTP on a loopback ZT_HOST only, with a loud warning.
import { auditConfigFromEnv } from "../audit/config.js";
import { openAudit } from "../audit/index.js";
import { ensureAdminToken } from "../http/auth.js";
import { loadConfig } from "../common/config.js";
import { ensureWritableDir, PathAccessError } from "../common/path-access.js";
import { identityEngineOptions } from "../http/identity.js";
import { assertPlaintextHost, type Identity, IdentityConfigError, parseIdentityConfig, PLAINTEXT_WARNING, setupIdentity } from "../identity/index.js";
import type { IdentityLog } from "../identity/tls.js";
import { createLogger, type Logger } from "../common/logger.js";
import { createMetrics } from "../metrics/metrics.js";
import { PolicyStoreError } from "../engine/policy-store.js";
import { StartupError } from "../engine/shared-state.js";
import { guardDriverWriteAfterClose, openStateBackend } from "../store/index.js";
import { type EngineHandle, startEngine } from "../http/server.js";
import { serveExtensions } from "./extensions.js";
import { loadProxySettings, ProxyConfigError, type ProxySettings } from "../proxy/config.js";
import { proxyExtension, proxyListenOptions } from "../proxy/index.js";

const USAGE = `usage: zt serve

Starts the ZT policy engine: the API on ZT_PORT (8054) and health on ZT_HEALTH_PORT (8055),
with the policies under ZT_POLICY_PATH (./policies) and local state in ZT_DATA_DIR (./data).
The API is served over mTLS with the engine's SVID from ZT_SPIRE_SOCKET (or ZT_TLS_CERT,
ZT_TLS_KEY, ZT_TLS_BUNDLE); without either, plain HTTP on a loopback ZT_HOST only.
Every setting is an environment variable; see docs/operations.md and docs/identity.md.
`;

const PROXY_USAGE = `usage: zt proxy

Runs the operator access proxy alone (docs/proxy.md): the routes of ZT_PROXY_ROUTES on ZT_PORT
(8054) over HTTPS with ZT_PROXY_TLS_CERT/ZT_PROXY_TLS_KEY, sign-in with ZT_OIDC_ISSUER, every
request decided by the engine's core with the policies under ZT_POLICY_PATH and recorded in the
audit trail (ZT_DATA_DIR's embedded PostgreSQL, or ZT_AUDIT_DSN); upstreams are reached over mTLS
with the SVID of ZT_SPIRE_SOCKET or ZT_TLS_*. Health on ZT_HEALTH_PORT (8055). No API routes.
`;

/** SIGTERM/SIGINT arrived while the engine was still waiting for its first SVID. */
class StartAborted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`start aborted by ${signal}`);
    this.name = "StartAborted";
  }
}

function waitForSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      // A second signal while draining means "now": exit without waiting further.
      const hurry = (again: NodeJS.Signals): void => {
        log.warn("second signal during shutdown: exiting now", { signal: again });
        process.exit(1);
      };
      process.once("SIGTERM", hurry);
      process.once("SIGINT", hurry);
      resolve(sig);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

export function serveCommand(argv: string[]): Promise<number> {
  return runEngine(argv, "serve");
}

/**
 * `zt serve` (the engine, with the access proxy beside the API when ZT_PROXY_ROUTES is set) or
 * `zt proxy` (the access proxy alone: every request on ZT_PORT is the proxy's; the decision
 * core, policies and audit trail in the same process, no API routes).
 */
export async function runEngine(argv: string[], mode: "serve" | "proxy"): Promise<number> {
  const cmd = `zt ${mode}`;
  const usage = mode === "serve" ? USAGE : PROXY_USAGE;
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`${cmd}: unexpected argument "${argv[0]}" (settings are environment variables)\n\n${usage}`);
    return 2;
  }
  const cfg = loadConfig(process.env);
  if (!cfg.ok) {
    for (const e of cfg.errors) process.stderr.write(`${cmd}: ${e}\n`);
    return 2;
  }
  const config = cfg.config;
  const log = createLogger({ level: config.logLevel });
  // A connection PostgreSQL closes under a pending write must not end the engine (store/errors.ts).
  guardDriverWriteAfterClose((e) => log.warn("database connection closed during a write; the driver reconnects", { err: e }));
  let proxy: ProxySettings | null;
  try {
    proxy = loadProxySettings(process.env, config.dataDir);
  } catch (e) {
    if (!(e instanceof ProxyConfigError)) throw e;
    for (const p of e.problems) process.stderr.write(`${cmd}: ${p}\n`);
    return 2;
  }
  if (mode === "serve" && proxy === null && config.consoleProxyAudience !== null) {
    process.stderr.write(`${cmd}: ZT_CONSOLE_PROXY_AUDIENCE is the console's sign-in through the access proxy, which is not configured: set ZT_PROXY_ROUTES (docs/console.md)\n`);
    return 2;
  }
  if (mode === "proxy" && proxy === null) {
    process.stderr.write(`${cmd}: ZT_PROXY_ROUTES is required: the AccessRoute files the proxy serves (docs/proxy.md)\n`);
    return 2;
  }

  // Identity settings are checked before anything starts; plain HTTP only on loopback.
  let identityMode: "spire" | "files" | "plaintext";
  try {
    identityMode = parseIdentityConfig(process.env).tls.mode;
  } catch (e) {
    if (!(e instanceof IdentityConfigError)) throw e;
    for (const p of e.problems) process.stderr.write(`${cmd}: ${p}\n`);
    return 2;
  }
  if (identityMode === "plaintext" && mode === "serve" && proxy !== null) {
    process.stderr.write(`${cmd}: the access proxy (ZT_PROXY_ROUTES) shares the API listener, which is plain HTTP without an SVID: set ZT_SPIRE_SOCKET or ZT_TLS_*, or run it alone with \`zt proxy\`\n`);
    return 2;
  }
  // `zt proxy` serves TLS with the proxy's own certificate whatever the engine's identity.
  if (identityMode === "plaintext" && mode === "serve") {
    try {
      assertPlaintextHost(config.host);
    } catch (e) {
      process.stderr.write(`${cmd}: ${(e as Error).message}; set ZT_HOST=127.0.0.1 for local development, or ZT_SPIRE_SOCKET / ZT_TLS_CERT+ZT_TLS_KEY+ZT_TLS_BUNDLE to serve mTLS\n`);
      return 2;
    }
  }

  let auditConfig;
  try {
    auditConfig = auditConfigFromEnv(process.env);
  } catch (e) {
    process.stderr.write(`${cmd}: ${(e as Error).message}\n`);
    return 2;
  }
  auditConfig.dataDir = config.dataDir;
  auditConfig.logger = (obj) => log.info(typeof obj.msg === "string" ? obj.msg : "audit", { component: "audit", ...obj });

  // The data directory first: an unusable one is one line naming it and the account, not a
  // failure of whichever part happens to touch it first.
  try {
    await ensureWritableDir(config.dataDir, "ZT_DATA_DIR", "choose a ZT_DATA_DIR this account can write");
  } catch (e) {
    if (!(e instanceof PathAccessError)) throw e;
    process.stderr.write(`${cmd}: ${e.message}\n`);
    return 2;
  }

  let token: Awaited<ReturnType<typeof ensureAdminToken>>;
  try {
    token = await ensureAdminToken({ token: config.adminToken, tokenFile: config.adminTokenFile, dataDir: config.dataDir });
  } catch (e) {
    process.stderr.write(`${cmd}: admin token: ${(e as Error).message}\n`);
    return 2;
  }
  if (token.origin === "generated") {
    log.warn("no ZT_ADMIN_TOKEN set: generated an admin token", { path: token.path });
    process.stderr.write(`${cmd}: admin token generated and stored in ${token.path} (mode 0600); use it as "Authorization: Bearer <token>"\n`);
  } else if (token.origin === "file") {
    log.info("admin token read from file", { path: token.path });
  }

  // The engine's metrics first: the identity layer registers zt_svid_rotations_total on this
  // registry, and the engine only adds the seed metrics that nobody registered before it.
  const metrics = createMetrics({ maxSeries: config.metricsMaxSeries });
  const identityLog: IdentityLog = (level, msg, fields) => log[level](msg, { component: "identity", ...fields });
  let identity: Identity;
  try {
    identity = await setupIdentity(process.env, { registry: metrics.registry, adminToken: token.token, log: identityLog, waitForSvid: false });
  } catch (e) {
    // Files mode reads and validates the certificate files now: a bad file is a configuration error.
    log.error("identity setup failed; not starting", { err: e });
    process.stderr.write(`${cmd}: identity: ${(e as Error).message}\n`);
    return 2;
  }
  if (identity.config.tls.mode === "plaintext") {
    process.stderr.write(`${cmd}: WARNING: ${PLAINTEXT_WARNING}\n`);
  } else if (identity.config.tls.mode === "spire" && identity.source.current() === null) {
    log.info("waiting for the engine's X.509-SVID from the SPIRE agent; the API port opens once it arrives", { socket: identity.config.tls.socketPath });
  }

  const signal = waitForSignal(log);
  let audit: Awaited<ReturnType<typeof openAudit>>;
  try {
    audit = await openAudit(auditConfig);
  } catch (e) {
    log.error("audit trail unavailable; not starting", { err: e });
    process.stderr.write(`${cmd}: audit trail: ${(e as Error).message.replace(/\s*\n\s*/g, " ")}\n`);
    await identity.close();
    return 1;
  }
  // The shared state lives on the audit trail's server, written by the same engine role.
  const state = openStateBackend({ engineDsn: audit.connections.engine, ownerDsn: audit.connections.owner, replicaId: config.replicaId, log });
  const hooks = identityEngineOptions(identity);
  const proxyOptions = proxy ? { settings: proxy, identity: identity.source, superuserDsn: audit.connections.superuser, dataDir: config.dataDir } : null;
  const extensions =
    mode === "proxy" ? [proxyExtension({ ...proxyOptions!, claimAll: true })] : serveExtensions({ config, audit, adminToken: token.token, proxy: proxyOptions });
  // Alone, the proxy listens with its own certificate and asks no client certificate.
  const listen = mode === "proxy" ? { listenOptions: proxyListenOptions(proxy!), onApiServer: () => undefined } : {};
  let engine: EngineHandle;
  try {
    engine = await startEngine({
      config,
      audit,
      state,
      log,
      adminToken: token.token,
      metrics,
      ...hooks,
      ...listen,
      extensions,
      // A signal while SPIRE has not delivered the first SVID stops the start cleanly.
      beforeListen: () => Promise.race([hooks.beforeListen(), signal.then((sig) => Promise.reject(new StartAborted(sig)))]),
    });
  } catch (e) {
    await state.close();
    if (e instanceof StartAborted) {
      log.info("signal received before the first SVID arrived; stopping", { signal: e.signal });
      await audit.close();
      await identity.close();
      return 0;
    }
    if (e instanceof StartupError) {
      log.error("shared state unavailable and no local cache; not starting", { err: e });
      process.stderr.write(`zt serve: ${e.message}\n`);
    } else if (e instanceof PolicyStoreError) {
      for (const d of e.diagnostics) process.stderr.write(`${d.file}:${d.line}:${d.col}: ${d.message}\n`);
      log.error("policies do not validate; not starting", { errors: e.diagnostics.length });
    } else {
      log.error("engine failed to start", { err: e });
      process.stderr.write(`${cmd}: ${(e as Error).message}\n`);
    }
    await audit.close();
    await identity.close();
    return 1;
  }
  const sig = await signal;
  log.info("signal received", { signal: sig });
  try {
    await engine.close();
    await identity.close();
  } catch (e) {
    log.error("shutdown failed", { err: e });
    process.stderr.write(`${cmd}: shutdown failed: ${(e as Error).message}\n`);
    return 1;
  }
  // Everything is flushed and closed. postgres.js can leave a reconnect timer behind for a
  // connection that was still starting up when its pool ended (e.g. during a database
  // outage); it must not keep a stopped engine alive.
  setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  return 0;
}

export function proxyCommand(argv: string[]): Promise<number> {
  return runEngine(argv, "proxy");
}
