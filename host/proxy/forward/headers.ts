// What crosses the proxy in headers. Upstream, the client's hop-by-hop headers go, so does every
// header that could claim an identity (the proxy's own X-Zt-*, X-Forwarded-*, IAP's, Pomerium's,
// oauth2-proxy's, Kubernetes impersonation) and the proxy's cookies and credential; the proxy
// then adds what it vouches for. Downstream, hop-by-hop headers go, and no upstream may set a
// cookie under the proxy's names.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { PROXY_COOKIE_PREFIX, withoutProxyCookies } from "../authenticate/cookies.js";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings"]);

/** Headers a client could use to pose as someone, in any upstream's convention. */
const IDENTITY_EXACT = new Set(["forwarded", "x-real-ip", "x-client-ip", "true-client-ip", "remote-user", "x-remote-user", "x-user", "x-email", "x-auth-user", "x-webauth-user", "x-ms-client-principal"]);
const IDENTITY_PREFIXES = ["x-zt-", "x-forwarded-", "x-pomerium-", "x-goog-iap-", "x-goog-authenticated-", "x-auth-request-", "x-amzn-oidc-", "impersonate-", "x-remote-"];

function isIdentityHeader(name: string): boolean {
  if (IDENTITY_EXACT.has(name)) return true;
  for (const p of IDENTITY_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}

/** Header names listed in Connection are hop-by-hop too (RFC 9110 7.6.1). */
function connectionListed(headers: IncomingHttpHeaders): Set<string> | null {
  const c = headers.connection;
  if (!c) return null;
  return new Set(c.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
}

export interface UpstreamHeaderOptions {
  /** The upstream request's Host header (the upstream's own, or the public one with preserveHost). */
  readonly host: string;
  /** Strip Authorization: it carried the proxy's credential. */
  readonly consumedAuthorization: boolean;
  /** Keep Upgrade/Connection: upgrade (a WebSocket handshake). */
  readonly upgrade: boolean;
  /** What the proxy vouches for. */
  readonly add: OutgoingHttpHeaders;
}

export function upstreamRequestHeaders(headers: IncomingHttpHeaders, o: UpstreamHeaderOptions): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed?.has(name) || isIdentityHeader(name)) continue;
    if (name === "host" || name === "cookie") continue;
    if (name === "authorization" && o.consumedAuthorization) continue;
    out[name] = headers[name];
  }
  const cookie = withoutProxyCookies(headers.cookie);
  if (cookie !== null) out.cookie = cookie;
  out.host = o.host;
  if (o.upgrade) {
    out.connection = "upgrade";
    out.upgrade = headers.upgrade;
  }
  for (const name in o.add) out[name] = o.add[name];
  return out;
}

/** Response headers for the client, from the upstream's raw headers (keeps duplicates, e.g. Set-Cookie). */
export function downstreamResponseHeaders(rawHeaders: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  let listed: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === "connection") listed = new Set(rawHeaders[i + 1]!.split(",").map((s) => s.trim().toLowerCase()));
  }
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    if (name === "set-cookie" && value.trimStart().startsWith(PROXY_COOKIE_PREFIX)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [String(prev), value];
  }
  return out;
}
