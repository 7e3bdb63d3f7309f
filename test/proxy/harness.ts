// The operator access proxy as `zt serve` runs it, in-process and real: the engine over mTLS
// with its SVID from files, the proxy mounted as an extension on the same port with its own
// public certificate for *.zt.test, the audit trail and sessions in an embedded PostgreSQL, a real
// OpenID Provider (idp.ts) and a web console upstream over mTLS (upstream.ts). Clients reach the
// proxy by name (SNI and Host) at 127.0.0.1.
import "reflect-metadata";
import { createServer } from "node:net";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as https from "node:https";
import type { IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { type Audit, auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { parseAuditQuery, queryAudit } from "../../host/audit/query.js";
import type { AuditRecord } from "../../host/audit/record.js";
import { AUDIT_DATABASE, withUser } from "../../host/audit/roles.js";
import postgres, { type Sql } from "postgres";
import { identityEngineOptions } from "../../host/http/identity.js";
import { type Identity, setupIdentity } from "../../host/identity/index.js";
import { createMetrics } from "../../host/metrics/metrics.js";
import { loadProxySettings } from "../../host/proxy/config.js";
import { proxyExtension } from "../../host/proxy/index.js";
import { serveExtensions } from "../../host/cli/extensions.js";
import { loadConfig } from "../../host/common/config.js";
import type { EngineCore, ExtensionFactory } from "../../host/http/extension.js";
import { createCa, issueSvid, type TestCa } from "../identity/pki.js";
import { startTestEngine, type TestEngine, TOKEN } from "../http/harness.js";
import { POLICIES_DIR } from "../support/seed.js";
import { CLIENT_ID, CLIENT_SECRET, type Idp, startIdp } from "./idp.js";
import { startUpstream, type Upstream } from "./upstream.js";

export const ENGINE_ID = "spiffe://hanzo.ai/hanzo-k8s/zt/proxy";
export const CONSOLE_ID = "spiffe://hanzo.ai/hanzo-k8s/monitoring/grafana";
export const ASSERTION_ISSUER = "zt-access-proxy";
export const APP = "app.zt.test";
export const ADMIN = "admin.zt.test";
/** The ZT console behind the proxy (test/console/proxy-signin.browser.test.ts). */
export const CONSOLE_HOST = "console.zt.test";

export interface ProxyHarness {
  readonly engine: TestEngine;
  /** A superuser connection to the audit trail's database (the proxy's schema is not the engine role's to read). */
  readonly sql: Sql;
  readonly audit: Audit;
  readonly identity: Identity;
  readonly idp: Idp;
  readonly upstream: Upstream;
  readonly root: TestCa;
  readonly web: TestCa;
  /** The proxy's public certificate and the IdP's (PEM), e.g. for a browser's SPKI allow list. */
  readonly publicCertPem: string;
  readonly idpCertPem: string;
  readonly port: number;
  readonly routesDir: string;
  /** https://<host>:<port> */
  origin(host: string): string;
  dispose(): Promise<void>;
}

export interface HarnessOptions {
  /** Extra route documents (YAML), written beside the default ones; given the embedded PostgreSQL's port and the engine's. */
  readonly routes?: (ctx: { pgPort: number; upstreamPort: number; enginePort: number }) => string;
  /** Extra policy files (name -> YAML) beside the seed's. */
  readonly policies?: Readonly<Record<string, string>>;
  /**
   * Mount what `zt serve` mounts (host/cli/extensions.ts: rollout, console, the proxy) instead of
   * the proxy alone, configured by these variables (e.g. ZT_CONSOLE_PROXY_AUDIENCE).
   */
  readonly serveExtensions?: Record<string, string>;
  readonly env?: Record<string, string>;
  readonly idTokenTtl?: number;
}

/** What zt serve mounts with the proxy configured, in order (host/cli/extensions.ts). */
const SERVE_EXTENSIONS = ["rollout", "console", "proxy"] as const;

/** A free TCP port on 127.0.0.1 (the IdP must know the proxy's redirect URIs before it starts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function defaultRoutes(upstreamPort: number): string {
  return `apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: console}
spec:
  from: https://${APP}
  service: gateway
  to: https://127.0.0.1:${upstreamPort}
  upstream:
    spiffeId: ${CONSOLE_ID}
  actions:
    - path: /logs/**
      action: logs
    - path: /metrics
      action: metrics
---
apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: db-admin}
spec:
  from: https://${ADMIN}
  service: postgres
  to: https://127.0.0.1:${upstreamPort}
  upstream:
    spiffeId: ${CONSOLE_ID}
`;
}

export async function startProxyHarness(opts: HarnessOptions = {}): Promise<ProxyHarness> {
  const root = await createCa({ trustDomain: "hanzo.ai" });
  const web = await createCa({ trustDomain: "web.test", name: "zt.test web CA" });
  const port = await freePort();
  const engineSvid = await issueSvid(root, ENGINE_ID);
  const consoleSvid = await issueSvid(root, CONSOLE_ID);
  const publicCert = await issueSvid(web, null, { dns: ["*.zt.test"], eku: undefined });
  const idpCert = await issueSvid(web, null, { ips: ["127.0.0.1"] });

  const hosts = [APP, ADMIN, CONSOLE_HOST, "db.zt.test", "ssh.zt.test", "k8s.zt.test"];
  const idp = await startIdp({
    certPem: idpCert.certPem,
    keyPem: idpCert.keyPem,
    redirectUris: hosts.map((h) => `https://${h}:${port}/.zt/callback`),
    postLogoutRedirectUris: hosts.map((h) => `https://${h}:${port}/.zt/signed-out`),
    idTokenTtl: opts.idTokenTtl,
  });

  let harness: ProxyHarness | null = null;
  const upstream = await startUpstream({
    certPem: consoleSvid.certPem,
    keyPem: consoleSvid.keyPem,
    caPem: root.pem,
    issuer: ASSERTION_ISSUER,
    audience: "127.0.0.1",
    fetchJwks: async () => JSON.parse((await proxyRequest(harness!, APP, "/.zt/jwks.json")).body) as JSONWebKeySet,
  });

  // The engine's directories, as startTestEngine lays them out (policies: the seed's).
  const dir = mkdtempSync(join(tmpdir(), "zt-proxy-"));
  chmodSync(dir, 0o711);
  cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
  for (const [name, text] of Object.entries(opts.policies ?? {})) writeFileSync(join(dir, "policies", name), text);
  const files = join(dir, "files");
  mkdirSync(files, { recursive: true });
  const w = (name: string, text: string): string => {
    writeFileSync(join(files, name), text, { mode: 0o600 });
    return join(files, name);
  };
  const routesDir = join(dir, "routes");
  mkdirSync(routesDir, { recursive: true });
  const writeRoutes = (pgPort: number): void => writeFileSync(join(routesDir, "routes.yaml"), defaultRoutes(upstream.port) + (opts.routes ? `---\n${opts.routes({ pgPort, upstreamPort: upstream.port, enginePort: port })}` : ""));
  const env: Record<string, string> = {
    ZT_TLS_CERT: w("svid.pem", engineSvid.certPem),
    ZT_TLS_KEY: w("svid-key.pem", engineSvid.keyPem),
    ZT_TLS_BUNDLE: w("bundle.pem", root.pem),
    ZT_PROXY_ROUTES: routesDir,
    ZT_OIDC_ISSUER: idp.issuer,
    ZT_OIDC_CLIENT_ID: CLIENT_ID,
    ZT_OIDC_CLIENT_SECRET_FILE: w("client-secret", CLIENT_SECRET),
    ZT_OIDC_CA_FILE: w("web-ca.pem", web.pem),
    ZT_OIDC_SCOPES: "openid email profile roles offline_access",
    ZT_OIDC_GROUP_ROLES: "team-sre=sre",
    ZT_PROXY_TLS_CERT: w("public.pem", publicCert.certPem),
    ZT_PROXY_TLS_KEY: w("public-key.pem", publicCert.keyPem),
    ...opts.env,
  };
  const metrics = createMetrics({ processMetrics: false });
  const identity = await setupIdentity(env, { registry: metrics.registry, adminToken: TOKEN });
  let audit!: Audit;
  const dataDir = join(dir, "data");
  const settings = loadProxySettings(env, dataDir)!;
  const proxyOptions = () => ({ settings, identity: identity.source, superuserDsn: audit.connections.superuser, dataDir, assertionIssuer: ASSERTION_ISSUER });
  // What zt serve mounts (rollout, console, proxy), built once the audit trail is open.
  let serveList: ExtensionFactory[] | null = null;
  const served = (): ExtensionFactory[] => {
    if (serveList !== null) return serveList;
    const config = loadConfig({ ZT_DATA_DIR: dataDir, ...opts.serveExtensions });
    if (!config.ok) throw new Error(config.errors.join("; "));
    serveList = serveExtensions({ config: config.config, audit, adminToken: TOKEN, proxy: proxyOptions() });
    if (serveList.length !== SERVE_EXTENSIONS.length) throw new Error(`zt serve mounts ${serveList.length} extensions, not ${SERVE_EXTENSIONS.join(", ")}`);
    return serveList;
  };
  const real = await startTestEngine({
    dir,
    env: { ZT_PORT: String(port) },
    audit: async () => {
      audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: dataDir }));
      // The routes may lead to the audit trail's own PostgreSQL (the psql tunnel test).
      writeRoutes(audit.embedded!.port);
      return audit;
    },
    engine: {
      metrics,
      ...identityEngineOptions(identity),
      extensions: opts.serveExtensions === undefined ? [(core) => proxyExtension(proxyOptions())(core)] : SERVE_EXTENSIONS.map((_, i) => (core: EngineCore) => served()[i]!(core)),
    },
  });
  const sql = postgres(withUser(audit.connections.superuser!, new URL(audit.connections.superuser!).username, decodeURIComponent(new URL(audit.connections.superuser!).password), AUDIT_DATABASE), { max: 2, onnotice: () => undefined, fetch_types: false });
  harness = {
    sql,
    engine: real,
    audit,
    identity,
    idp,
    upstream,
    root,
    web,
    publicCertPem: publicCert.certPem,
    idpCertPem: idpCert.certPem,
    port,
    routesDir,
    origin: (host) => `https://${host}:${port}`,
    async dispose() {
      await sql.end({ timeout: 5 });
      await real.dispose();
      await identity.close();
      await idp.close();
      await upstream.close();
    },
  };
  return harness;
}

export interface ProxyReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly jar?: CookieJar;
  /** Connect from this loopback address (e.g. 127.0.0.2, a trusted load balancer). */
  readonly localAddress?: string;
  /** Host header other than the TLS name. */
  readonly authority?: string;
}

/** A request to the proxy by name: SNI and Host `host`, connected to 127.0.0.1, trusting the web CA. */
export function proxyRequest(h: ProxyHarness, host: string, path: string, o: RequestOptions = {}): Promise<ProxyReply> {
  return httpsRequest({ host: "127.0.0.1", port: h.port, servername: host, ca: h.web.pem, authority: o.authority ?? `${host}:${h.port}` }, path, o);
}

export function httpsRequest(to: { host: string; port: number; servername?: string; ca: string; authority: string }, path: string, o: RequestOptions = {}): Promise<ProxyReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: to.authority, ...o.headers };
    const cookie = o.jar?.header(to.authority);
    if (cookie) headers.cookie = cookie;
    if (o.body !== undefined) headers["content-length"] = String(Buffer.byteLength(o.body));
    const req = https.request({ host: to.host, port: to.port, servername: to.servername, ca: to.ca, method: o.method ?? "GET", path, headers, agent: false, localAddress: o.localAddress }, (res) => {
      o.jar?.store(to.authority, res.headers["set-cookie"] ?? []);
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

/** Cookies per authority, as a browser keeps them (enough for the proxy's and the IdP's). */
export class CookieJar {
  private readonly byHost = new Map<string, Map<string, string>>();
  /** Raw Set-Cookie values seen, for attribute checks. */
  readonly raw: string[] = [];

  store(authority: string, setCookies: readonly string[]): void {
    const jar = this.byHost.get(authority) ?? new Map<string, string>();
    for (const sc of setCookies) {
      this.raw.push(sc);
      const [pair, ...attrs] = sc.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || attrs.some((a) => /^\s*expires=.*1970/i.test(a));
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
    this.byHost.set(authority, jar);
  }

  get(authority: string, name: string): string | undefined {
    return this.byHost.get(authority)?.get(name);
  }

  set(authority: string, name: string, value: string): void {
    const jar = this.byHost.get(authority) ?? new Map<string, string>();
    jar.set(name, value);
    this.byHost.set(authority, jar);
  }

  names(authority: string): string[] {
    return [...(this.byHost.get(authority)?.keys() ?? [])];
  }

  header(authority: string): string | null {
    const jar = this.byHost.get(authority);
    if (!jar || jar.size === 0) return null;
    return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

/** The audit records of these decisions, read back from PostgreSQL with the audit trail's own query. */
export async function audited(h: ProxyHarness, ids: readonly string[]): Promise<Map<string, AuditRecord>> {
  await h.audit.sink.flush();
  const q = parseAuditQuery({ limit: ["1000"] });
  if (!q.ok) throw new Error(q.error.message);
  const page = await queryAudit(h.audit.query, q.value);
  const out = new Map<string, AuditRecord>();
  for (const r of page.records) if (ids.includes(r.decision_id)) out.set(r.decision_id, r);
  return out;
}
