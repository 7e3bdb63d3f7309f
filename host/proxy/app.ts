// The proxy's request path, composed top to bottom: who sent it and for which public host
// (request-info), the proxy's own endpoints (/.zt/: sign in and out, JWKS, CLI login), then
// every other request through the gate (authenticate, authorize) and forward/ to the upstream.
// WebSocket handshakes take the same gate from the server's `upgrade` event.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { Hono } from "hono";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Logger } from "../common/logger.js";
import type { ProxyEnv } from "./context.js";
import type { ForwardDeps } from "./forward/http.js";
import { forwardHttp, forwardUpgrade, upstreamRequestOptions } from "./forward/http.js";
import { UpstreamUnavailableError } from "./forward/upstream.js";
import type { Gate } from "./gate.js";
import type { ProxyMetrics } from "./metrics.js";
import { answerBytes, answerResponse, page, wantsHtml } from "./pages.js";
import { JWKS_PATH, PREFIX } from "./paths.js";
import { requestInfo, type RequestInfo } from "./request-info.js";
import type { BlockList } from "node:net";

export interface ProxyAppDeps extends ForwardDeps {
  readonly gate: Gate;
  readonly auth: Hono<ProxyEnv>;
  readonly metrics: ProxyMetrics;
  readonly trustedProxies: BlockList | null;
  readonly log: Logger;
}

function infoOf(req: IncomingMessage, proxies: BlockList | null): RequestInfo {
  return requestInfo(req.headers, req.socket.remoteAddress, proxies, (req.socket as TLSSocket).encrypted === true);
}

function upstreamFailure(deps: ProxyAppDeps, route: string, e: Error, html: boolean) {
  deps.metrics.request(route, "upstream_error");
  deps.log.warn("proxy: upstream failed", { route, err: e.message });
  const message = e instanceof UpstreamUnavailableError ? e.message : "The upstream could not be reached.";
  return page({ status: 502, title: "Upstream unavailable", message, code: "upstream_unavailable" }, html);
}

export function proxyApp(deps: ProxyAppDeps): Hono<ProxyEnv> {
  const app = new Hono<ProxyEnv>();
  // Fail closed with a page that says nothing of the internals (they go to the log).
  app.onError((err, c) => {
    deps.log.error("proxy: request failed", { err, path: c.req.path });
    return page({ status: 500, title: "Internal error", message: "The access proxy failed on this request; nothing was forwarded.", code: "internal_error" }, wantsHtml(c.env.incoming.headers));
  });

  app.use(async (c, next) => {
    const info = infoOf(c.env.incoming, deps.trustedProxies);
    c.set("info", info);
    // A load balancer we trust says the client used plain HTTP: refuse rather than redirect, so
    // that a misconfigured balancer cannot make a redirect loop. The proxy serves HTTPS only.
    if (info.proto === "http") return page({ status: 403, title: "HTTPS only", message: "The access proxy serves HTTPS only; configure the load balancer to redirect HTTP.", code: "https_required" }, wantsHtml(c.env.incoming.headers));
    return next();
  });

  app.get(JWKS_PATH, async (c) => c.json(await deps.signer.jwks(), 200, { "cache-control": "public, max-age=300" }));
  app.route("/", deps.auth);
  app.all(`${PREFIX}/*`, (c) => page({ status: 404, title: "Not found", message: "No such page of the access proxy.", code: "not_found" }, wantsHtml(c.env.incoming.headers)));

  app.all("*", async (c) => {
    const req = c.env.incoming;
    const r = await deps.gate.http(req.method ?? "GET", req.url ?? "/", req.headers, c.var.info, "http");
    if (!r.ok) return answerResponse(r.answer);
    const a = r.admitted;
    let options;
    try {
      options = await upstreamRequestOptions(deps, a, req, c.var.info, false);
    } catch (e) {
      return upstreamFailure(deps, a.route.name, e as Error, wantsHtml(req.headers));
    }
    deps.metrics.request(a.route.name, "allowed");
    forwardHttp(options, req, c.env.outgoing, (e) => {
      const res = upstreamFailure(deps, a.route.name, e, wantsHtml(req.headers));
      void res.text().then((body) => {
        if (c.env.outgoing.headersSent) return c.env.outgoing.destroy();
        const headers: Record<string, string> = {};
        res.headers.forEach((v, k) => (headers[k] = v));
        c.env.outgoing.writeHead(res.status, headers).end(body);
      });
    });
    return RESPONSE_ALREADY_SENT;
  });

  return app;
}

/** The `upgrade` listener: WebSocket handshakes for the proxy's hosts through the same gate. */
export function upgradeHandler(deps: ProxyAppDeps, mine: (req: IncomingMessage) => boolean): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    if (!mine(req)) {
      socket.end("HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nno upgrade is served on this host\n");
      return;
    }
    void (async () => {
      const info = infoOf(req, deps.trustedProxies);
      const r = await deps.gate.http(req.method ?? "GET", req.url ?? "/", req.headers, info, "websocket");
      if (!r.ok) {
        socket.end(await answerBytes({ ...r.answer, html: false }));
        return;
      }
      const options = await upstreamRequestOptions(deps, r.admitted, req, info, true);
      deps.metrics.request(r.admitted.route.name, "allowed");
      forwardUpgrade(options, socket, head, (e) => {
        deps.metrics.request(r.admitted.route.name, "upstream_error");
        deps.log.warn("proxy: upstream upgrade failed", { route: r.admitted.route.name, err: e.message });
        socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nthe upstream could not be reached\n");
      });
    })().catch((e: unknown) => {
      deps.log.error("proxy: upgrade failed", { err: e });
      socket.destroy();
    });
  };
}
