// Forwarding an admitted request (or WebSocket handshake) to its route's upstream over mTLS:
// the normalised path, the filtered headers plus what the proxy vouches for (the signed
// assertion, X-Forwarded-*, the route's credential), streamed both ways with no timeout, and
// the upstream's answer streamed back. A failure before the answer starts is a 502 page.
import * as https from "node:https";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { HttpRoute } from "../../../compiler/access-route/model.js";
import type { Admitted } from "../gate.js";
import type { RequestInfo } from "../request-info.js";
import { ASSERTION_HEADER, type AssertionSigner } from "./assertion.js";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "./headers.js";
import { upstreamPath } from "./path.js";
import type { Upstreams } from "./upstream.js";

export interface ForwardDeps {
  readonly upstreams: Upstreams;
  readonly signer: AssertionSigner;
}

/** The upstream request for an admitted HTTP request (or WebSocket handshake when `upgrade`). */
export async function upstreamRequestOptions(deps: ForwardDeps, a: Admitted<HttpRoute>, req: IncomingMessage, info: RequestInfo, upgrade: boolean): Promise<https.RequestOptions> {
  const route = a.route;
  const id = a.identity;
  const add: OutgoingHttpHeaders = {
    [ASSERTION_HEADER]: await deps.signer.assertion({ subject: id.subject, email: id.email, roles: id.roles, amr: id.amr }, route.upstream.hostname),
    "x-forwarded-for": info.remote,
    "x-forwarded-proto": "https",
    "x-forwarded-host": info.authority,
  };
  const token = deps.upstreams.bearerToken(route);
  if (token !== null) add.authorization = `Bearer ${token}`;
  if (route.credential.impersonate) {
    add["impersonate-user"] = id.subject;
    if (id.roles.length > 0) add["impersonate-group"] = [...id.roles];
  }
  const headers = upstreamRequestHeaders(req.headers, {
    host: route.preserveHost ? info.authority : route.upstream.host,
    consumedAuthorization: a.source === "authorization",
    upgrade,
    add,
  });
  return {
    host: route.upstream.hostname,
    port: route.upstream.port === "" ? 443 : Number(route.upstream.port),
    method: req.method,
    path: upstreamPath(route.upstream.pathname, a.path, route.prefix, route.stripPrefix, a.query),
    headers,
    agent: upgrade ? false : deps.upstreams.agent(route),
    ...(upgrade ? deps.upstreams.tlsOptions(route, route.upstream.hostname) : {}),
  };
}

/** Streams `req` to the upstream and its answer to `res`; `done` reports whether the upstream answered. */
export function forwardHttp(options: https.RequestOptions, req: IncomingMessage, res: ServerResponse, onUpstreamError: (e: Error) => void): void {
  const up = https.request(options);
  let answered = false;
  up.on("response", (ur) => {
    answered = true;
    res.writeHead(ur.statusCode ?? 502, ur.statusMessage, downstreamResponseHeaders(ur.rawHeaders));
    // A stream (no length: logs -f, events) gets its headers at once; a sized answer sends them
    // with its first bytes (one TLS record and one write instead of two).
    if (ur.headers["content-length"] === undefined) res.flushHeaders();
    ur.pipe(res);
    ur.on("error", () => res.destroy());
  });
  up.on("error", (e) => {
    if (!answered && !res.headersSent) onUpstreamError(e);
    else res.destroy();
  });
  // The client went away: so does the upstream request.
  res.on("close", () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
}

/** A WebSocket (or any Upgrade): the handshake goes upstream; on 101 the two sockets are joined. */
export function forwardUpgrade(options: https.RequestOptions, socket: Duplex, head: Buffer, onUpstreamError: (e: Error) => void): void {
  const up = https.request(options);
  up.on("upgrade", (ur, upSocket, upHead) => {
    const lines = [`HTTP/1.1 101 ${ur.statusMessage ?? "Switching Protocols"}`];
    for (let i = 0; i < ur.rawHeaders.length; i += 2) lines.push(`${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}`);
    socket.write(lines.join("\r\n") + "\r\n\r\n");
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.pipe(socket);
    socket.pipe(upSocket);
    upSocket.on("error", () => socket.destroy());
    socket.on("error", () => upSocket.destroy());
    upSocket.on("close", () => socket.destroy());
    socket.on("close", () => upSocket.destroy());
  });
  // The upstream declined the upgrade: relay its answer and close.
  up.on("response", (ur) => {
    const lines = [`HTTP/1.1 ${ur.statusCode} ${ur.statusMessage ?? ""}`];
    const headers = downstreamResponseHeaders(ur.rawHeaders);
    for (const [k, v] of Object.entries(headers)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
    lines.push("connection: close");
    socket.write(lines.join("\r\n") + "\r\n\r\n");
    ur.pipe(socket);
  });
  up.on("error", onUpstreamError);
  socket.on("close", () => up.destroy());
  up.end();
}
