// The operator access proxy as an extension of the engine's listener (host/http/extension.ts):
// it serves the routes' public host names (their own certificate, no client SVID needed),
// claims every request for them, handles their WebSocket upgrades and CONNECT tunnels, and
// decides through the engine's core it is given. `zt serve` mounts it beside the API;
// `zt proxy` runs it alone. Routes, the public certificate and sessions reload without a restart.
import { randomBytes } from "node:crypto";
import * as https from "node:https";
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { createSecureContext, type SecureContext } from "node:tls";
import type { JWK } from "jose";
import type { Sql } from "postgres";
import { loadRouteSet } from "../../compiler/access-route/load.js";
import { formatDiagnostic } from "../../compiler/diagnostics.js";
import { policyFiles } from "../../compiler/load.js";
import { writeFileDurable } from "../common/durable-file.js";
import type { Logger } from "../common/logger.js";
import type { EngineCore, Extension, ExtensionFactory } from "../http/extension.js";
import type { IdentitySource } from "../identity/tls.js";
import { proxyApp, upgradeHandler } from "./app.js";
import { Authenticator } from "./authenticate/credential.js";
import { Logins } from "./authenticate/login.js";
import { createOidcClient } from "./authenticate/oidc.js";
import { authRoutes } from "./authenticate/routes.js";
import { createSealer } from "./authenticate/seal.js";
import { SessionStore } from "./authenticate/sessions.js";
import { createAuthorizer } from "./authorize/operator.js";
import { parseSecrets, ProxyConfigError, type ProxySettings } from "./config.js";
import { createAssertionSigner } from "./forward/assertion.js";
import { createUpstreams } from "./forward/upstream.js";
import { Gate } from "./gate.js";
import { registerProxyMetrics } from "./metrics.js";
import { hostOf } from "./request-info.js";
import { RouteTable } from "./route-table.js";
import { openProxyDb } from "./store/db.js";
import { tunnelHandler } from "./tunnel/connect.js";

export interface ProxyOptions {
  readonly settings: ProxySettings;
  /** The engine's SVID source: the client certificate for mTLS to upstreams. */
  readonly identity: IdentitySource | null;
  /** The embedded audit server's superuser DSN, to create the proxy's role and schema there. */
  readonly superuserDsn: string | null;
  readonly dataDir: string;
  /** `zt proxy`: every request on the listener is the proxy's (no API beside it). */
  readonly claimAll?: boolean;
  /** Issuer of X-Zt-Jwt-Assertion. */
  readonly assertionIssuer?: string;
  /**
   * Called once the assertion keys exist, with what /.zt/jwks.json serves: an upstream in the
   * same process (the console behind this proxy) verifies X-Zt-Jwt-Assertion with it in memory.
   */
  readonly onAssertionKeys?: (keys: AssertionKeys) => void;
}

export { ASSERTION_HEADER } from "./forward/assertion.js";

/** How another room checks the proxy's identity assertion: the issuer it signs as, and its JWKS. */
export interface AssertionKeys {
  readonly issuer: string;
  jwks(): Promise<{ keys: JWK[] }>;
}

/** The proxy secret: configured (ZT_PROXY_COOKIE_SECRET_FILE), else generated once into the data directory. */
async function secrets(settings: ProxySettings): Promise<Buffer[]> {
  if (settings.secrets !== null) return [...settings.secrets];
  try {
    const problems: string[] = [];
    const s = parseSecrets(readFileSync(settings.secretFile, "utf8"), settings.secretFile, problems);
    if (problems.length > 0) throw new ProxyConfigError(problems);
    return s;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const secret = randomBytes(32);
  await writeFileDurable(settings.secretFile, secret.toString("base64") + "\n");
  return [secret];
}

async function loadRoutes(paths: readonly string[]): Promise<RouteTable> {
  const r = await loadRouteSet(paths);
  if (!r.ok) throw new ProxyConfigError(r.errors.map(formatDiagnostic));
  if (r.routes.length === 0) throw new ProxyConfigError([`no AccessRoute documents under ${paths.join(", ")}`]);
  return new RouteTable(r.routes);
}

/** A fingerprint of files (names and modification times): a change means reload. */
async function stampOf(files: readonly string[]): Promise<string> {
  const parts: string[] = [];
  for (const f of files) {
    try {
      parts.push(`${f}@${(await stat(f)).mtimeMs}`);
    } catch {
      parts.push(`${f}@missing`);
    }
  }
  return parts.join("|");
}

/** Reloads a value when its files change, keeping the last good one when the new one is invalid. */
function reloading<T>(files: () => Promise<readonly string[]>, build: () => Promise<T>, onError: (e: unknown) => void): { get(): T; check(): Promise<void>; start(first: T): Promise<void> } {
  let value: T;
  let stamp = "";
  let checking: Promise<void> | null = null;
  const check = async (): Promise<void> => {
    const now = await stampOf(await files());
    if (now === stamp) return;
    stamp = now;
    try {
      value = await build();
    } catch (e) {
      onError(e);
    }
  };
  return {
    get: () => value,
    async start(first) {
      value = first;
      stamp = await stampOf(await files());
    },
    check: () => (checking ??= check().finally(() => (checking = null))),
  };
}

/** The current public certificate of each running proxy, for the listener of `zt proxy`. */
const publicContexts = new WeakMap<ProxySettings, () => SecureContext>();

/**
 * Listener options of `zt proxy` (the proxy alone on ZT_PORT): HTTPS with the proxy's public
 * certificate, no client certificate asked; a renewed certificate applies at the next handshake.
 */
export function proxyListenOptions(settings: ProxySettings): { createServer: typeof https.createServer; serverOptions: https.ServerOptions } {
  return {
    createServer: https.createServer,
    serverOptions: {
      cert: settings.tlsCertPem,
      key: settings.tlsKeyPem,
      minVersion: "TLSv1.2",
      SNICallback: (_name, cb) => cb(null, publicContexts.get(settings)?.()),
    },
  };
}

export function proxyExtension(opts: ProxyOptions): ExtensionFactory {
  return async (core: EngineCore): Promise<Extension> => {
    const { settings } = opts;
    const log: Logger = core.log;
    // Every file under the route paths, so that a new or removed file is a change too.
    const routeFiles = async (): Promise<string[]> => [...settings.routePaths, ...(await policyFiles(settings.routePaths).catch(() => []))];
    const routes = reloading<RouteTable>(routeFiles, () => loadRoutes(settings.routePaths), (e) =>
      log.error("proxy: route files do not validate; the previous routes keep serving", { errors: e instanceof ProxyConfigError ? e.problems : String(e) }),
    );
    await routes.start(await loadRoutes(settings.routePaths));
    const tls = reloading<SecureContext>(async () => [settings.tlsCertFile, settings.tlsKeyFile], async () => createSecureContext({ cert: readFileSync(settings.tlsCertFile), key: readFileSync(settings.tlsKeyFile), minVersion: "TLSv1.2" }), (e) =>
      log.error("proxy: the public certificate files are invalid; the previous certificate keeps serving", { err: String(e) }),
    );
    await tls.start(createSecureContext({ cert: settings.tlsCertPem, key: settings.tlsKeyPem, minVersion: "TLSv1.2" }));

    let sql: Sql | null = null;
    const cleanups: Array<() => void | Promise<void>> = [];
    try {
      sql = await openProxyDb({ dsn: settings.dsn, superuserDsn: opts.superuserDsn, dataDir: opts.dataDir });
      const keys = await secrets(settings);
      const cookies = createSealer(keys, "session-cookie");
      const atRest = createSealer(keys, "at-rest");
      const oidc = createOidcClient(settings.oidc);
      const sessions = new SessionStore(sql, atRest, { idleSec: settings.sessionIdleSec, maxSec: settings.sessionMaxSec, cacheMs: settings.sessionCacheMs });
      const logins = new Logins(sql, createSealer(keys, "login-state"), oidc);
      const auth = new Authenticator({ sessions, cookies, oidc, settings: settings.oidc });
      const metrics = registerProxyMetrics(core.metrics.registry, () => new Set(routes.get().routes.map((r) => r.name)));
      const authorizer = createAuthorizer({ store: core.store, sink: core.sink, incidents: core.incidents, metrics: core.metrics, log, mode: core.mode, origin: "engine", auditWaitMs: 1000 });
      const issuer = opts.assertionIssuer ?? "zt-access-proxy";
      const signer = await createAssertionSigner(sql, atRest, { issuer, ttlSec: settings.assertionTtlSec, rotationSec: settings.keyRotationSec });
      cleanups.push(() => signer.close());
      opts.onAssertionKeys?.({ issuer, jwks: () => signer.jwks() });
      const upstreams = createUpstreams(opts.identity);
      cleanups.push(() => upstreams.close());
      const gate = new Gate({ routes: routes.get, auth, authorizer, metrics });
      const authApp = authRoutes({ sql, logins, sessions, auth, cookies, oidc, settings, authorizer, metrics });
      const deps = { gate, auth: authApp, metrics, trustedProxies: settings.trustedProxies, log, upstreams, signer };
      const app = proxyApp(deps);
      // Discovery early, so the first sign-in does not wait for it (a failure is retried later).
      oidc.configuration().catch((e: unknown) => log.warn("proxy: identity provider not reachable yet", { err: (e as Error).message }));

      const housekeeping = setInterval(() => {
        void routes.check();
        void tls.check();
        sessions
          .sweep()
          .then(() => sessions.count())
          .then((n) => metrics.sessions(n))
          .catch((e: unknown) => log.warn("proxy: session housekeeping failed", { err: (e as Error).message }));
      }, 5000);
      housekeeping.unref();
      cleanups.push(() => clearInterval(housekeeping));
      const watchers: FSWatcher[] = [];
      for (const p of settings.routePaths) {
        try {
          watchers.push(watch(p, { persistent: false }, () => void routes.check()));
        } catch {
          // A path that cannot be watched is still rescanned every few seconds.
        }
      }
      cleanups.push(() => watchers.forEach((w) => w.close()));

      publicContexts.set(settings, () => tls.get());
      const isMine = (host: string): boolean => opts.claimAll === true || routes.get().hasHost(host);
      const mine = (req: IncomingMessage): boolean => isMine(hostOf(req.headers.host ?? ""));
      const db = sql;
      log.info("proxy: serving", { routes: routes.get().routes.map((r) => `${r.name}: ${r.kind === "http" ? `https://${r.host}${r.prefix}` : `tcp+https://${r.host}:${r.port}`}`), issuer: settings.oidc.issuer.href });
      return {
        name: "proxy",
        app: app as never,
        // Beside the API, the proxy's names get its certificate; alone, the listener has it anyway.
        ...(opts.claimAll ? {} : { tls: { serves: (name: string) => routes.get().hasHost(name), secureContext: () => tls.get() } }),
        claims: (req) => isMine(hostOf(req.headers.get("host") ?? "")),
        onServer(server) {
          server.on("upgrade", upgradeHandler(deps, mine));
          server.on("connect", tunnelHandler({ gate, metrics, upstreams, sql: db, log, trustedProxies: settings.trustedProxies }));
        },
        async close() {
          for (const c of cleanups.reverse()) await c();
          await db.end({ timeout: 5 });
        },
      };
    } catch (e) {
      for (const c of cleanups.reverse()) await c();
      await sql?.end({ timeout: 5 });
      throw e;
    }
  };
}
