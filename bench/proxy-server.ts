// Child processes of bench/proxy.ts. `upstream`: a web console over mTLS (client SVIDs of the
// bench CA only) answering a small JSON, and a TCP echo server; prints "READY <https> <tcp>".
// `proxy`: the engine with the access proxy beside its API, as `zt serve` runs it (SVID from
// files, audit trail on an embedded PostgreSQL, seed policies), routes to that upstream, and one
// CLI session for the load generator (no IdP is needed to use it); prints "READY <port> <token>".
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as https from "node:https";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import postgres from "postgres";
import { auditConfigFromEnv, openAudit } from "../host/audit/index.js";
import { AUDIT_DATABASE, withUser } from "../host/audit/roles.js";
import { loadConfig } from "../host/common/config.js";
import { createLogger } from "../host/common/logger.js";
import { identityEngineOptions } from "../host/http/identity.js";
import { startEngine } from "../host/http/server.js";
import { setupIdentity } from "../host/identity/index.js";
import { createMetrics } from "../host/metrics/metrics.js";
import { loadProxySettings } from "../host/proxy/config.js";
import { proxyExtension } from "../host/proxy/index.js";

const [mode, dir] = process.argv.slice(2);
const file = (name: string): string => join(dir!, name);
const BODY = JSON.stringify({ dashboards: [{ id: 1, title: "postgres" }, { id: 2, title: "redis" }], generated_at: "2026-12-06T00:00:00Z" });

async function upstream(): Promise<() => Promise<void>> {
  const server = https.createServer({ cert: readFileSync(file("upstream.pem")), key: readFileSync(file("upstream.key")), ca: readFileSync(file("ca.pem")), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(BODY) }).end(BODY));
  });
  server.keepAliveTimeout = 60_000;
  const echo = createServer((s) => s.pipe(s).on("error", () => s.destroy()));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  process.stdout.write(`READY ${(server.address() as AddressInfo).port} ${(echo.address() as AddressInfo).port}\n`);
  return async () => {
    server.close();
    echo.close();
  };
}

async function proxy(): Promise<() => Promise<void>> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ZT_HOST: "127.0.0.1",
    ZT_PORT: "0",
    ZT_HEALTH_PORT: "0",
    ZT_DATA_DIR: file("data"),
    ZT_POLICY_PATH: process.env.ZT_POLICY_PATH ?? "policies",
    ZT_TLS_CERT: file("engine.pem"),
    ZT_TLS_KEY: file("engine.key"),
    ZT_TLS_BUNDLE: file("ca.pem"),
    ZT_PROXY_ROUTES: file("routes"),
    // Never reached: the load uses a CLI session, and sessions without tokens never refresh.
    ZT_OIDC_ISSUER: "https://127.0.0.1:9",
    ZT_OIDC_CLIENT_ID: "bench",
    ZT_OIDC_CLIENT_SECRET_FILE: file("client-secret"),
    ZT_PROXY_TLS_CERT: file("public.pem"),
    ZT_PROXY_TLS_KEY: file("public.key"),
    ZT_LOG_LEVEL: "error",
  };
  const cfg = loadConfig(env);
  if (!cfg.ok) throw new Error(cfg.errors.join("; "));
  const log = createLogger({ level: "error" });
  const metrics = createMetrics();
  const identity = await setupIdentity(env, { registry: metrics.registry, adminToken: null });
  const audit = await openAudit({ ...auditConfigFromEnv(env), dataDir: cfg.config.dataDir });
  const settings = loadProxySettings(env, cfg.config.dataDir)!;
  const engine = await startEngine({
    config: cfg.config,
    audit,
    log,
    adminToken: "bench-admin-token-0123456789",
    metrics,
    ...identityEngineOptions(identity),
    extensions: [proxyExtension({ settings, identity: identity.source, superuserDsn: audit.connections.superuser, dataDir: cfg.config.dataDir })],
  });
  // One operator session, as `zt connect` holds after signing in (sre: may write postgres).
  const su = new URL(audit.connections.superuser!);
  const sql = postgres(withUser(su.href, decodeURIComponent(su.username), decodeURIComponent(su.password), AUDIT_DATABASE), { max: 1, onnotice: () => undefined });
  const id = randomBytes(32).toString("base64url");
  await sql`INSERT INTO zt_proxy.sessions (id_hash, kind, host, subject, roles, amr, idle_expires_at, expires_at)
    VALUES (${createHash("sha256").update(id).digest()}, 'cli', 'bench.zt.test', 'bench@hanzo.test', '["sre"]'::jsonb, '[]'::jsonb, now() + interval '1 day', now() + interval '1 day')`;
  await sql.end();
  process.stdout.write(`READY ${engine.port} ztp_${id}\n`);
  return async () => {
    await engine.close();
    await identity.close();
  };
}

const stop = await (mode === "upstream" ? upstream() : proxy());
process.once("SIGTERM", () => {
  void stop().then(() => process.exit(0));
});
