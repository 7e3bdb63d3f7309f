// A real HTTPS server wired the way the engine wires the identity modules: Hono on
// @hono/node-server with https.createServer, mTLS options from the identity source, rotation
// in place, every connection's SVID validated right after its handshake, callers read from
// the connection per request, agent JWTs checked on POST /v1/evaluate.
import { Hono } from "hono";
import { serve, type HttpBindings } from "@hono/node-server";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import { attachRotation, logHandshakeFailures, mtlsServerOptions, spiffeServerIdentity, type IdentityLog, type IdentitySource } from "../../host/identity/tls.js";
import { createPeerVerifier } from "../../host/identity/peer.js";
import { callerLabel, createCallerAuth, type CallerAuth } from "../../host/identity/caller.js";
import { decideAgentAccess, isAgentRequest, parseAgentRequest, agentAuditFields, type RequiredScopes } from "../../host/identity/agent.js";
import type { JwtVerifier } from "../../host/identity/jwt.js";

export interface HarnessOptions {
  readonly source: IdentitySource;
  readonly adminToken?: string | null;
  readonly adminSpiffeIds?: readonly string[];
  readonly trustedEvaluators?: readonly string[];
  readonly jwt?: JwtVerifier | null;
  readonly requiredScopes?: RequiredScopes;
  /** Clock for the per-request SVID check (the handshake uses the real clock). */
  readonly now?: () => Date;
  readonly log?: IdentityLog;
}

export interface Harness {
  readonly port: number;
  readonly server: TlsServer;
  readonly auth: CallerAuth;
  /** Audit fields of agent decisions, in order (what the engine hands to the AuditSink). */
  readonly audits: Array<ReturnType<typeof agentAuditFields>>;
  close(): Promise<void>;
}

export async function startHarness(opts: HarnessOptions): Promise<Harness> {
  const log = opts.log;
  const peer = createPeerVerifier(opts.source, opts.now, (f) => log?.("warn", "client certificate is not a valid X.509-SVID", f));
  const auth = createCallerAuth({
    peer,
    adminToken: opts.adminToken ?? null,
    adminSpiffeIds: new Set(opts.adminSpiffeIds ?? []),
    trustedEvaluators: new Set(opts.trustedEvaluators ?? []),
  });
  const audits: Array<ReturnType<typeof agentAuditFields>> = [];
  const app = new Hono<{ Bindings: HttpBindings }>();

  app.get("/whoami", (c) => {
    const who = auth.identify(c.env.incoming);
    if (!who.ok) return c.json({ error: who.code, reason: who.reason, detail: who.error }, who.status);
    const sock = c.env.incoming.socket as TLSSocket;
    return c.json({ caller: callerLabel(who.caller), admin: auth.isAdmin(who.caller), resumed: sock.isSessionReused(), serial: ((c.env.incoming.socket as TLSSocket).getCertificate() as { serialNumber?: string } | null)?.serialNumber ?? null });
  });

  app.get("/v1/audit", (c) => {
    const who = auth.identify(c.env.incoming);
    if (!who.ok) return c.json({ error: who.code, reason: who.reason, detail: who.error }, who.status);
    const admin = auth.permit(who.caller, "admin");
    if (!admin.ok) return c.json({ error: admin.code, detail: admin.error }, admin.status);
    return c.json({ records: [] });
  });

  app.post("/v1/evaluate", async (c) => {
    const who = auth.identify(c.env.incoming);
    if (!who.ok) return c.json({ error: who.code, reason: who.reason, detail: who.error }, who.status);
    const body: unknown = await c.req.json();
    if (isAgentRequest(body)) {
      const req = parseAgentRequest(body);
      if (!req.ok) return c.json({ error: "invalid_request", path: req.path, detail: req.error }, 400);
      const authz = auth.authorizeAgentEvaluate(who.caller, req.value.destination);
      if (!authz.ok) return c.json({ error: authz.code, detail: authz.error }, authz.status);
      const d = await decideAgentAccess(req.value, opts.jwt ?? null, opts.requiredScopes ?? (() => null));
      const audit = agentAuditFields(d, who.caller);
      audits.push(audit);
      return c.json({ decision: audit.decision, reason: d.reason, detail: d.detail, missing_scopes: d.missingScopes, caller: audit.caller });
    }
    const source = (body as { source?: { spiffe_id?: string } }).source?.spiffe_id ?? "";
    const authz = auth.authorizeEvaluate(who.caller, source);
    if (!authz.ok) return c.json({ error: authz.code, detail: authz.error }, authz.status);
    return c.json({ evaluated_for: source, caller: callerLabel(who.caller) });
  });

  const server = serve({
    fetch: app.fetch,
    port: 0,
    hostname: "127.0.0.1",
    createServer: https.createServer,
    serverOptions: mtlsServerOptions(opts.source),
  }) as unknown as TlsServer;
  if (!server.listening) await new Promise<void>((r) => server.once("listening", () => r()));
  const stopRotation = attachRotation(server, opts.source, log);
  const stopPeers = peer.attach(server);
  const stopLog = log ? logHandshakeFailures(server, log) : () => undefined;
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    server,
    auth,
    audits,
    close: () =>
      new Promise<void>((resolve) => {
        stopRotation();
        stopPeers();
        stopLog();
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

export interface ClientIdentity {
  readonly certPem?: string;
  readonly keyPem?: string;
}

export interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  /** Serial number of the server certificate this request's connection saw. */
  readonly serverSerial: string;
  readonly socketReused: boolean;
}

/** An https.Agent that trusts `caPem` and checks that the server is `serverId`. */
export function clientAgent(caPem: string | string[], serverId: string, id: ClientIdentity, keepAlive: boolean): https.Agent {
  return new https.Agent({
    ca: caPem,
    cert: id.certPem,
    key: id.keyPem,
    keepAlive,
    maxSockets: 1,
    checkServerIdentity: spiffeServerIdentity(serverId),
  });
}

export function request(port: number, agent: https.Agent, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent,
        headers: { ...(data ? { "content-type": "application/json", "content-length": String(data.length) } : {}), ...headers },
      },
      (res) => {
        // Read the peer now: a keep-alive socket goes back to the pool at the end.
        const serverSerial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { raw: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, serverSerial, socketReused: req.reusedSocket });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}
