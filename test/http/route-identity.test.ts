// Every route of the API port against every kind of client certificate, over real mTLS: the
// engine's SVID from a SPIRE agent stand-in, callers' certificates made here (as test/identity
// does), the real audit trail (embedded PostgreSQL) so that its routes are mounted, and an
// extension with a route and a claimed host. The routes come from the running engine, not from
// a list in this file: a route added anywhere is tested here with the rule its line gives it,
// and a route without a line stops the engine (extension.test.ts shows that refusal).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { serveExtensions } from "../../host/cli/extensions.js";
import { loadConfig } from "../../host/common/config.js";
import { createLogger } from "../../host/common/logger.js";
import type { EngineEnv } from "../../host/http/context.js";
import { callerOf } from "../../host/http/identity-gate.js";
import { identityEngineOptions } from "../../host/http/identity.js";
import { ROUTE_IDENTITY, type RouteLine } from "../../host/http/route-identity.js";
import type { IdentityRule } from "../../host/identity/caller.js";
import { type Identity, setupIdentity } from "../../host/identity/index.js";
import { createMetrics } from "../../host/metrics/metrics.js";
import { loadProxySettings, type ProxySettings } from "../../host/proxy/config.js";
import { startFakeAgent, svidMessage, type FakeAgent } from "../identity/agent-server.js";
import { clientAgent, type Reply, request } from "../identity/harness.js";
import { createCa, issueSvid, type SvidOptions, type TestCa } from "../identity/pki.js";
import { POLICIES_DIR } from "../support/seed.js";
import { H, startTestEngine, type TestEngine, TOKEN } from "./harness.js";

const ZT_ID = H + "zt";
const GATEWAY = H + "gateway";
const ADMIN = "spiffe://hanzo.ai/hanzo-k8s/zt/admin-cli";
const PARTNER = "spiffe://partner.org/prod/api";
const CLAIMED_HOST = "probe.test";
/** The test's own lines: an extension route and a claimed host, beside the engine's table. */
const TEST_LINES: Record<string, IdentityRule> = { "GET /v1/probe-extension": "reader", "CLAIMED probe-host": "own" };

let dir: string;
let root: TestCa;
let partner: TestCa;
let spire: FakeAgent;
let identity: Identity;
let e: TestEngine;
const lines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zt-route-identity-"));
  mkdirSync(join(dir, "policies"));
  cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
  root = await createCa({ trustDomain: "hanzo.ai" });
  partner = await createCa({ trustDomain: "partner.org" });
  spire = await startFakeAgent(join(dir, "agent.sock"), { svids: [svidMessage(ZT_ID, await issueSvid(root, ZT_ID), [root])], crl: [], federated_bundles: { "spiffe://partner.org": partner.der } });
  const log = createLogger({ level: "debug", write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const metrics = createMetrics();
  identity = await setupIdentity(
    { ZT_SPIRE_SOCKET: `unix://${spire.socketPath}`, ZT_ADMIN_SPIFFE_IDS: ADMIN },
    { registry: metrics.registry, adminToken: TOKEN, waitForSvid: false, log: (level, msg, fields) => log[level](msg, { component: "identity", ...fields }) },
  );
  const loaded = loadConfig({});
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  chmodSync(dir, 0o711);
  const audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data") }));
  // The operator access proxy as `zt serve` mounts it with ZT_PROXY_ROUTES set (its own files).
  const proxy = await proxySettings(dir, join(dir, "data"));
  e = await startTestEngine({
    dir,
    audit: () => audit,
    engine: {
      log,
      metrics,
      ...identityEngineOptions(identity),
      routeIdentity: { ...ROUTE_IDENTITY, ...TEST_LINES },
      // What `zt serve` mounts, and a route and a claimed host of the test's own.
      extensions: [
        ...serveExtensions({ config: loaded.config, audit, adminToken: TOKEN, proxy: { settings: proxy, identity: identity.source, superuserDsn: audit.connections.superuser, dataDir: join(dir, "data") } }),
        () => {
          const app = new Hono<EngineEnv>();
          app.get("/v1/probe-extension", (c) => c.json({ caller: c.get("caller") }));
          return { name: "probe-routes", app };
        },
        () => {
          const app = new Hono<EngineEnv>();
          app.all("*", (c) => c.json({ claimed: true, transport: callerOf(c).transport }));
          return { name: "probe-host", app, claims: (req) => req.headers.get("host") === CLAIMED_HOST };
        },
      ],
    },
  });
});

/** Proxy settings with real files: routes, the public certificate, a client secret; the issuer is never reached here. */
async function proxySettings(base: string, dataDir: string): Promise<ProxySettings> {
  const files = join(base, "proxy");
  mkdirSync(join(files, "routes"), { recursive: true });
  writeFileSync(join(files, "routes", "r.yaml"), "apiVersion: zt.hanzo.ai/v1\nkind: AccessRoute\nmetadata: {name: app}\nspec: {from: 'https://app.zt.test', service: gateway, to: 'https://127.0.0.1:9'}\n");
  const web = await createCa({ trustDomain: "web.test" });
  const cert = await issueSvid(web, null, { dns: ["app.zt.test"] });
  writeFileSync(join(files, "public.pem"), cert.certPem);
  writeFileSync(join(files, "public.key"), cert.keyPem);
  writeFileSync(join(files, "secret"), "client-secret\n");
  return loadProxySettings(
    { ZT_PROXY_ROUTES: join(files, "routes"), ZT_OIDC_ISSUER: "https://127.0.0.1:9", ZT_OIDC_CLIENT_ID: "zt-proxy", ZT_OIDC_CLIENT_SECRET_FILE: join(files, "secret"), ZT_PROXY_TLS_CERT: join(files, "public.pem"), ZT_PROXY_TLS_KEY: join(files, "public.key") },
    dataDir,
  )!;
}

afterAll(async () => {
  await e?.dispose();
  await identity?.close();
  await spire?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What a client presents: a certificate (or none) and an Authorization header (or none). */
interface Case {
  readonly name: string;
  readonly cert: () => Promise<{ certPem?: string; keyPem?: string }>;
  /** Null: the certificate is a valid X.509-SVID; else the rule it breaks (the refusal's reason). */
  readonly broken: string | null;
  readonly token?: "right" | "wrong" | "malformed";
  /** The SVID's trust domain is a reader domain (hanzo.ai, the engine's own). */
  readonly reader?: boolean;
  /** The SVID is an admin SPIFFE ID. */
  readonly adminId?: boolean;
}

const svid = (ca: () => TestCa | Promise<TestCa>, id: string | null, opts: SvidOptions = {}) => async () => {
  const s = await issueSvid(await ca(), id, opts);
  return { certPem: s.certPem, keyPem: s.keyPem };
};
const HOUR = 3600_000;
const AUTHORIZATION = { right: `Bearer ${TOKEN}`, wrong: "Bearer not-the-admin-token", malformed: "Basic YWRtaW46YWRtaW4=" } as const;

const CASES: Case[] = [
  { name: "an SVID of the engine's trust domain", cert: svid(() => root, GATEWAY), broken: null, reader: true },
  { name: "an SVID of a federated trust domain", cert: svid(() => partner, PARTNER), broken: null, reader: false },
  { name: "the admin SVID", cert: svid(() => root, ADMIN), broken: null, reader: true, adminId: true },
  { name: "an SVID with the admin token", cert: svid(() => root, GATEWAY), token: "right", broken: null, reader: true },
  { name: "a federated SVID with the admin token", cert: svid(() => partner, PARTNER), token: "right", broken: null, reader: false },
  { name: "an SVID with a wrong bearer token", cert: svid(() => root, GATEWAY), token: "wrong", broken: null, reader: true },
  { name: "an SVID with a malformed Authorization", cert: svid(() => root, GATEWAY), token: "malformed", broken: null, reader: true },
  { name: "spiffe://evil.example signed by the hanzo.ai CA", cert: svid(() => root, "spiffe://evil.example/ns/x/sa/y"), broken: "unknown_trust_domain" },
  { name: "a partner.org ID signed by the hanzo.ai CA", cert: svid(() => root, PARTNER), broken: "untrusted_chain" },
  { name: "a leaf with CA:TRUE", cert: svid(() => root, GATEWAY, { ca: true }), broken: "leaf_is_ca" },
  { name: "a leaf with keyCertSign", cert: svid(() => root, GATEWAY, { keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign }), broken: "key_usage_signing_bits" },
  { name: "two URI SANs", cert: svid(() => root, null, { uris: [GATEWAY, H + "chat"] }), broken: "uri_san_count" },
  { name: "a non-SPIFFE URI SAN", cert: svid(() => root, null, { uris: ["https://gateway.hanzo.ai/"] }), broken: "invalid_spiffe_id" },
  { name: "a DNS-only certificate", cert: svid(() => root, null, { dns: ["gateway.hanzo.ai"] }), broken: "uri_san_count" },
  { name: "a certificate without SANs", cert: svid(() => root, null), broken: "uri_san_count" },
  { name: "an SVID from another CA", cert: svid(() => createCa({ trustDomain: "hanzo.ai", name: "rogue" }), GATEWAY), broken: "untrusted_chain" },
  { name: "an expired SVID", cert: svid(() => root, GATEWAY, { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) }), broken: "expired" },
  { name: "a not-yet-valid SVID", cert: svid(() => root, GATEWAY, { notBefore: new Date(Date.now() + HOUR), notAfter: new Date(Date.now() + 2 * HOUR) }), broken: "not_yet_valid" },
  { name: "no certificate", cert: async () => ({}), broken: "no_client_certificate" },
  { name: "no certificate, with the admin token", cert: async () => ({}), token: "right", broken: "no_client_certificate" },
  { name: "a CA:TRUE leaf with the admin token", cert: svid(() => root, GATEWAY, { ca: true }), token: "right", broken: "leaf_is_ca" },
  { name: "a DNS-only certificate with the admin token", cert: svid(() => root, null, { dns: ["gateway.hanzo.ai"] }), token: "right", broken: "uri_san_count" },
];

type Outcome = { readonly pass: true } | { readonly pass: false; readonly status: number; readonly code: string; readonly reason?: string };

/** What the table's rule says this client gets. */
function expected(c: Case, rule: IdentityRule): Outcome {
  // `own` routes judge the request themselves: the gate hands on whatever the connection holds.
  if (rule === "own") return { pass: true };
  // The connection first: no token makes up for a certificate that is not an X.509-SVID.
  if (c.broken !== null) return { pass: false, status: 401, code: "invalid_client_svid", reason: c.broken };
  if (c.token === "wrong") return { pass: false, status: 401, code: "invalid_admin_token" };
  if (c.token === "malformed") return { pass: false, status: 401, code: "malformed_authorization" };
  const admin = c.token === "right" || c.adminId === true;
  if (rule === "svid") return { pass: true };
  if (rule === "admin") return admin ? { pass: true } : { pass: false, status: 401, code: "unauthenticated" };
  // reader, and metrics (ZT_METRICS_ACCESS defaults to reader)
  return c.reader || admin ? { pass: true } : { pass: false, status: 403, code: "trust_domain_not_reader" };
}

/** A concrete request for a route line: parameters filled, a body no handler accepts (nothing changes). */
function requestFor(line: RouteLine): { method: string; path: string; host?: string } {
  if (line.method === "CLAIMED") return { method: "GET", path: "/v1/policies", host: CLAIMED_HOST };
  const path = line.path.replace(/:[a-z]+/g, "zz-probe").replace(/\*/g, "probe");
  return { method: line.method === "ALL" ? "GET" : line.method, path };
}

function errorOf(r: Reply): { code?: string; reason?: string } {
  const err = r.body["error"];
  return typeof err === "object" && err !== null ? (err as { code?: string; reason?: string }) : {};
}

describe("the identity rules of the API port", () => {
  it("every running route has the rule its line gives, and every line names something that runs", () => {
    const table = { ...ROUTE_IDENTITY, ...TEST_LINES };
    const prefixes = Object.keys(table).filter((k) => k.startsWith("PREFIX "));
    const prefixOf = (path: string): string | undefined =>
      prefixes.filter((k) => path === k.slice(7) || path.startsWith(`${k.slice(7)}/`)).sort((a, b) => b.length - a.length)[0];
    const used = new Set<string>();
    for (const l of e.routes) {
      const key = l.method === "CLAIMED" ? `CLAIMED ${l.path}` : `${l.method} ${l.path}`;
      const line = key in table ? key : prefixOf(l.path);
      expect(line, key).toBeDefined();
      expect(l.rule, key).toBe(table[line!]);
      used.add(line!);
    }
    // No stale lines: each names a route (or a room, for PREFIX) that zt serve or this test mounts.
    expect([...used].sort()).toEqual(Object.keys(table).sort());
  });

  it("docs/identity.md holds the same table", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../docs/identity.md", import.meta.url)), "utf8");
    // The first table after the heading: header, separator, then one row per route.
    const after = doc.slice(doc.indexOf("## Routes and identities")).split("\n");
    const start = after.findIndex((l) => l.startsWith("|"));
    const end = after.findIndex((l, i) => i > start && !l.startsWith("|"));
    const rows: Record<string, string> = {};
    for (const row of after.slice(start + 2, end)) {
      const cells = row.split("|").map((c) => c.trim().replace(/`/g, ""));
      rows[`${cells[1]} ${cells[2]}`] = cells[3]!;
    }
    expect(rows).toEqual(ROUTE_IDENTITY);
  });

  it("every client certificate against every route: the status the rule says, and the reason", async () => {
    const failures: string[] = [];
    let requests = 0;
    for (const c of CASES) {
      const agent: https.Agent = clientAgent(root.pem, ZT_ID, await c.cert(), true);
      try {
        for (const line of e.routes) {
          const want = expected(c, line.rule);
          const q = requestFor(line);
          const requestId = `probe-${requests}`;
          const headers: Record<string, string> = { "x-request-id": requestId, ...(c.token ? { authorization: AUTHORIZATION[c.token] } : {}), ...(q.host ? { host: q.host } : {}) };
          const r = await request(e.port, agent, q.method, q.path, q.method === "GET" ? undefined : "{", headers);
          requests++;
          const err = errorOf(r);
          const where = `${c.name} -> ${line.method} ${line.path} (${line.rule})`;
          // The gate logs every refusal with the request id: that tells its answers from a route's own 401/403.
          const refusal = lines.find((l) => l["msg"] === "request refused" && l["request_id"] === requestId);
          if (want.pass) {
            if (refusal) failures.push(`${where}: expected to pass the gate, refused: ${r.status} ${JSON.stringify(r.body)}`);
          } else if (!refusal) {
            failures.push(`${where}: expected the gate to refuse (${want.code}), got ${r.status} ${JSON.stringify(r.body)}`);
          } else if (r.status !== want.status || err.code !== want.code || (want.reason !== undefined && err.reason !== want.reason)) {
            failures.push(`${where}: expected ${want.status} ${want.code}${want.reason ? `/${want.reason}` : ""}, got ${r.status} ${JSON.stringify(r.body)}`);
          }
          // Caller-facing answers name no internal address or path.
          const text = JSON.stringify(r.body);
          if (text.includes("127.0.0.1") || text.includes(dir)) failures.push(`${where}: the answer names an internal address or path: ${text}`);
        }
      } finally {
        agent.destroy();
      }
    }
    expect(failures).toEqual([]);
    expect(requests).toBe(CASES.length * e.routes.length);
  });

  it("a claimed host reaches its extension without an SVID, and the extension sees none", async () => {
    const r = await request(e.port, clientAgent(root.pem, ZT_ID, {}, false), "GET", "/anything", undefined, { host: CLAIMED_HOST, authorization: "Bearer an-oidc-token-for-the-proxy" });
    expect(r).toMatchObject({ status: 200, body: { claimed: true, transport: "none" } });
  });

  it("logs every refusal with the peer's address, and each refused connection once with its rule", () => {
    const refused = lines.filter((l) => l["msg"] === "request refused");
    expect(refused.length).toBeGreaterThan(100);
    for (const l of refused) expect(l).toMatchObject({ remote: "127.0.0.1" });
    const connections = lines.filter((l) => l["msg"] === "client certificate is not a valid X.509-SVID");
    for (const l of connections) expect(l).toMatchObject({ component: "identity", remote: "127.0.0.1" });
    const reasons = new Set(connections.map((l) => l["code"]));
    for (const c of CASES) if (c.broken !== null) expect(reasons).toContain(c.broken);
  });
});
