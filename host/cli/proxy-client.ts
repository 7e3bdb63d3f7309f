// What `zt connect`, `zt kubeconfig` and `zt kube-credential` share: where the access proxy is,
// the operator's token for it (cached in ZT_CONFIG_DIR, mode 0600), the browser sign-in that gets
// one (RFC 8252: a loopback port, a PKCE-bound one-time code), and a TCP tunnel (HTTP CONNECT
// over TLS) that signs in again or steps up to MFA when the proxy asks for it.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { writeFileDurable } from "../common/durable-file.js";
import { UsageError } from "./io.js";

/** Where a route lives: its public host (and port), and where to dial when DNS says otherwise. */
export interface ProxyTarget {
  /** The route's public host name (TLS name and Host header). */
  readonly host: string;
  /** The public port of the proxy (8054 unless the route says host:port). */
  readonly port: number;
  /** Where to connect (`--proxy addr:port`); the host and port by default. */
  readonly dialHost: string;
  readonly dialPort: number;
  /** Extra CA certificates (PEM) for the proxy's certificate (`--ca`). */
  readonly ca: string | null;
  /** Print the sign-in URL instead of opening a browser. */
  readonly noBrowser: boolean;
}

export const DEFAULT_PROXY_PORT = 8054;

export function parseTarget(route: string | undefined, opts: { proxy?: string; ca?: string; "no-browser"?: boolean }, defaultPort = DEFAULT_PROXY_PORT): ProxyTarget {
  if (!route) throw new UsageError("a route host is required (e.g. grafana.ops.hanzo.ai)");
  const m = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(route);
  if (!m) throw new UsageError(`"${route}" is not host[:port]`);
  const host = m[1]!.toLowerCase();
  const port = m[2] ? Number(m[2]) : defaultPort;
  let dialHost = host;
  let dialPort = DEFAULT_PROXY_PORT;
  if (opts.proxy) {
    const p = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(opts.proxy);
    if (!p) throw new UsageError(`--proxy "${opts.proxy}" is not host:port`);
    dialHost = p[1]!.replace(/^\[|\]$/g, "");
    dialPort = Number(p[2]);
  }
  let ca: string | null = null;
  if (opts.ca) {
    try {
      ca = readFileSync(opts.ca, "utf8");
    } catch (e) {
      throw new UsageError(`--ca "${opts.ca}": ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
    }
  }
  return { host, port, dialHost, dialPort, ca, noBrowser: opts["no-browser"] === true };
}

/** The proxy's public origin for this target (sign-in URLs; always the public name). */
function origin(t: ProxyTarget): string {
  return `https://${t.host}:${t.dialPort}`;
}

// ---- the token cache -------------------------------------------------------------------------

interface CachedToken {
  readonly token: string;
  readonly expires_at: string;
  readonly subject: string;
}

function configDir(): string {
  return process.env.ZT_CONFIG_DIR || join(process.env.XDG_CONFIG_HOME || join(homedir(), ".config"), "zt");
}

function cacheFile(): string {
  return join(configDir(), "proxy-tokens.json");
}

/** Tokens are cached per proxy address: one sign-in serves every route of that proxy. */
function cacheKey(t: ProxyTarget): string {
  return `${t.dialHost}:${t.dialPort}`;
}

async function readCache(): Promise<Record<string, CachedToken>> {
  try {
    return JSON.parse(await readFile(cacheFile(), "utf8")) as Record<string, CachedToken>;
  } catch {
    return {};
  }
}

export async function cachedToken(t: ProxyTarget): Promise<CachedToken | null> {
  const c = (await readCache())[cacheKey(t)];
  return c && Date.parse(c.expires_at) > Date.now() + 30_000 ? c : null;
}

async function storeToken(t: ProxyTarget, tok: CachedToken | null): Promise<void> {
  const all = await readCache();
  if (tok === null) delete all[cacheKey(t)];
  else all[cacheKey(t)] = tok;
  await mkdir(configDir(), { recursive: true, mode: 0o700 });
  // The token is a credential: owner-only, written whole or not at all.
  await writeFileDurable(cacheFile(), JSON.stringify(all, null, 2) + "\n", 0o600);
}

export async function forgetToken(t: ProxyTarget): Promise<void> {
  await storeToken(t, null);
}

// ---- HTTPS to the proxy ----------------------------------------------------------------------

function tlsOptions(t: ProxyTarget): https.RequestOptions {
  return { host: t.dialHost, port: t.dialPort, servername: t.host, ...(t.ca ? { ca: t.ca } : {}) };
}

function postJson(t: ProxyTarget, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request({ ...tlsOptions(t), method: "POST", path, headers: { host: `${t.host}:${t.dialPort}`, "content-type": "application/json", "content-length": data.length, accept: "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
        } catch {
          // a non-JSON answer: status tells
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on("error", reject);
    req.end(data);
  });
}

// ---- sign-in ---------------------------------------------------------------------------------

function openBrowser(url: string): void {
  const cmd = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  try {
    spawn(cmd, [url], { stdio: "ignore", detached: true }).on("error", () => undefined).unref();
  } catch {
    // No browser here: the URL is printed anyway.
  }
}

/**
 * Signs in with the browser: a one-time code comes back to a loopback port, and is exchanged,
 * with the PKCE verifier only this process knows, for a token. `stepUp` asks for MFA.
 */
export async function browserLogin(t: ProxyTarget, stepUp: boolean, log: (line: string) => void): Promise<CachedToken> {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  let deliver!: (code: string) => void;
  const got = new Promise<string>((r) => (deliver = r));
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? "/", "http://127.0.0.1");
    const code = u.searchParams.get("code");
    if (u.pathname !== "/callback" || !code) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<!doctype html><title>zt</title><p>Signed in. You can close this tab and return to the terminal.</p>");
    deliver(code);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const port = (server.address() as AddressInfo).port;
    const url = `${origin(t)}/.zt/cli/login?port=${port}&challenge=${challenge}${stepUp ? "&step_up=mfa" : ""}`;
    log(`${stepUp ? "This needs multi-factor authentication. " : ""}Sign in to the access proxy: ${url}`);
    if (!t.noBrowser) openBrowser(url);
    const code = await got;
    const r = await postJson(t, "/.zt/cli/token", { code, verifier });
    if (r.status !== 200 || typeof r.json.token !== "string") throw new Error(`sign-in refused (${r.status}): ${JSON.stringify(r.json.error ?? r.json)}`);
    const tok = { token: r.json.token, expires_at: String(r.json.expires_at), subject: String(r.json.subject) };
    await storeToken(t, tok);
    log(`Signed in as ${tok.subject}.`);
    return tok;
  } finally {
    server.close();
  }
}

/** A cached token, or a sign-in for one. */
export async function tokenFor(t: ProxyTarget, log: (line: string) => void): Promise<CachedToken> {
  return (await cachedToken(t)) ?? browserLogin(t, false, log);
}

// ---- tunnels ---------------------------------------------------------------------------------

export interface ProxyRefusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly decisionId: string | null;
}

/** A tunnel, or the proxy's refusal (its JSON error, parsed). */
export type TunnelResult = { readonly ok: true; readonly socket: TLSSocket; readonly head: Buffer; readonly decisionId: string | null } | { readonly ok: false; readonly refusal: ProxyRefusal };

/** One CONNECT through the proxy with this token. */
export function openTunnel(t: ProxyTarget, token: string, incident: string | null): Promise<TunnelResult> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: t.dialHost, port: t.dialPort, servername: t.host, ...(t.ca ? { ca: t.ca } : {}), ALPNProtocols: ["http/1.1"] });
    let buf = Buffer.alloc(0);
    const fail = (e: Error): void => {
      socket.destroy();
      reject(e);
    };
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      const lines = [`CONNECT ${t.host}:${t.port} HTTP/1.1`, `Host: ${t.host}:${t.port}`, `Proxy-Authorization: Bearer ${token}`, "Accept: application/json"];
      if (incident) lines.push(`X-Zt-Incident: ${incident}`);
      socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > 64 * 1024) fail(new Error("the proxy's answer to CONNECT is too long"));
        return;
      }
      const head = buf.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "")?.[1] ?? 0);
      const header = (name: string): string | null => head.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ?? null;
      if (status === 200) {
        socket.off("data", onData);
        socket.off("error", fail);
        socket.pause();
        resolve({ ok: true, socket, head: buf.subarray(end + 4), decisionId: header("x-zt-decision-id") });
        return;
      }
      // A refusal: read its body (Content-Length), then close.
      const length = Number(header("content-length") ?? 0);
      if (buf.length - (end + 4) < length) return;
      socket.off("data", onData);
      socket.destroy();
      let error: { code?: string; message?: string; decision_id?: string } = {};
      try {
        error = (JSON.parse(buf.subarray(end + 4, end + 4 + length).toString("utf8")) as { error?: typeof error }).error ?? {};
      } catch {
        // not JSON
      }
      resolve({ ok: false, refusal: { status, code: error.code ?? `http_${status}`, message: error.message ?? head[0] ?? "", decisionId: error.decision_id ?? null } });
    };
    socket.on("data", onData);
  });
}

/**
 * A tunnel with sign-in as needed: a missing or refused token means signing in (once), a
 * request for MFA means signing in again with a second factor (once). Other refusals are final.
 */
export async function tunnel(t: ProxyTarget, incident: string | null, log: (line: string) => void): Promise<TunnelResult> {
  let tok = await tokenFor(t, log);
  let signedIn = false;
  let steppedUp = false;
  for (;;) {
    const r = await openTunnel(t, tok.token, incident);
    if (r.ok) return r;
    const code = r.refusal.code;
    if (r.refusal.status === 401 && code === "mfa_required" && !steppedUp) {
      steppedUp = true;
      tok = await browserLogin(t, true, log);
      continue;
    }
    if (r.refusal.status === 401 && code !== "mfa_required" && !signedIn) {
      signedIn = true;
      await forgetToken(t);
      tok = await browserLogin(t, false, log);
      continue;
    }
    return r;
  }
}
