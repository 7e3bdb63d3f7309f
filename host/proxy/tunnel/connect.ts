// tunnel/: TCP over HTTPS for SSH, PostgreSQL, kubectl port-forwards. A tunnel is an HTTP
// CONNECT to `route-host:port` on the proxy, authenticated like any request (a CLI token in
// Proxy-Authorization) and decided once, for this connection and this target, through the gate.
// When it closes, the bytes each way and its duration are recorded beside its decision
// (zt_proxy.tunnels, keyed by the audited decision id), in the metrics and in the log.
import type { IncomingMessage } from "node:http";
import { type BlockList, connect as tcpConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import type { Sql } from "postgres";
import type { TcpRoute } from "../../../compiler/access-route/model.js";
import type { Logger } from "../../common/logger.js";
import type { Upstreams } from "../forward/upstream.js";
import type { Admitted, Gate } from "../gate.js";
import type { ProxyMetrics } from "../metrics.js";
import { answerBytes } from "../pages.js";
import { hostOf, requestInfo } from "../request-info.js";

export interface TunnelDeps {
  readonly gate: Gate;
  readonly metrics: ProxyMetrics;
  readonly upstreams: Upstreams;
  readonly sql: Sql;
  readonly log: Logger;
  readonly trustedProxies: BlockList | null;
}

/** `host:port` of a CONNECT request target; null when it is not one. */
export function connectTarget(url: string | undefined): { host: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(url ?? "");
  if (!m) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: hostOf(m[1]!), port } : null;
}

function dial(deps: TunnelDeps, route: TcpRoute): Socket {
  if (!route.upstreamTls) return tcpConnect({ host: route.upstreamHost, port: route.upstreamPort });
  return tlsConnect({ host: route.upstreamHost, port: route.upstreamPort, ...deps.upstreams.tlsOptions(route, route.upstreamHost) });
}

/** Joins the client and the upstream; resolves when both are closed, with what they carried. */
function splice(client: Duplex, upstream: Socket, head: Buffer): Promise<{ up: number; down: number; reason: string }> {
  return new Promise((resolve) => {
    let up = head.length;
    let down = 0;
    let reason = "closed";
    let pending = 2;
    const done = (): void => {
      if (--pending === 0) resolve({ up, down, reason });
    };
    if (head.length > 0) upstream.write(head);
    client.on("data", (b: Buffer) => (up += b.length));
    upstream.on("data", (b: Buffer) => (down += b.length));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", (e) => {
      reason = `client error: ${e.message}`;
      upstream.destroy();
    });
    upstream.on("error", (e) => {
      reason = `upstream error: ${e.message}`;
      client.destroy();
    });
    client.on("close", () => {
      upstream.end();
      done();
    });
    upstream.on("close", () => {
      client.end();
      done();
    });
  });
}

async function record(deps: TunnelDeps, a: Admitted<TcpRoute>, remote: string, openedAt: Date): Promise<void> {
  try {
    await deps.sql`INSERT INTO zt_proxy.tunnels (decision_id, route, subject, remote, opened_at)
      VALUES (${a.decision.decision_id}, ${a.route.name}, ${a.identity.subject}, ${remote || null}, ${openedAt})`;
  } catch (e) {
    deps.log.warn("proxy: could not record a tunnel", { err: (e as Error).message, decision_id: a.decision.decision_id });
  }
}

export function tunnelHandler(deps: TunnelDeps): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    void (async () => {
      const target = connectTarget(req.url);
      const info = requestInfo(req.headers, req.socket.remoteAddress, deps.trustedProxies, true);
      if (target === null) {
        socket.end("HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nCONNECT needs host:port\n");
        return;
      }
      const r = await deps.gate.tunnel(target.host, target.port, req.headers, { ...info, host: target.host });
      if (!r.ok) {
        socket.end(await answerBytes(r.answer));
        return;
      }
      const a = r.admitted;
      let upstream: Socket;
      try {
        upstream = dial(deps, a.route);
      } catch (e) {
        deps.metrics.request(a.route.name, "upstream_error");
        socket.end(await answerBytes({ html: false, page: { status: 502, title: "Upstream unavailable", message: (e as Error).message, code: "upstream_unavailable" } }));
        return;
      }
      const connected = await new Promise<boolean>((resolve) => {
        upstream.once(a.route.upstreamTls ? "secureConnect" : "connect", () => resolve(true));
        upstream.once("error", () => resolve(false));
      });
      if (!connected) {
        deps.metrics.request(a.route.name, "upstream_error");
        deps.log.warn("proxy: tunnel upstream unreachable", { route: a.route.name });
        socket.end(await answerBytes({ html: false, page: { status: 502, title: "Upstream unavailable", message: "The tunnel's upstream could not be reached.", code: "upstream_unavailable", decisionId: a.decision.decision_id } }));
        return;
      }
      upstream.setKeepAlive(true, 60_000);
      upstream.setNoDelay(true);
      (req.socket as Socket).setNoDelay?.(true);
      deps.metrics.request(a.route.name, "allowed");
      deps.metrics.tunnelOpened(a.route.name);
      const openedAt = new Date();
      socket.write(`HTTP/1.1 200 Connection Established\r\nx-zt-decision-id: ${a.decision.decision_id}\r\n\r\n`);
      const recorded = record(deps, a, info.remote, openedAt);
      const closed = await splice(socket, upstream, head);
      await recorded;
      const ms = Date.now() - openedAt.getTime();
      deps.metrics.tunnelClosed(a.route.name, closed.up, closed.down);
      deps.log.info("proxy: tunnel closed", { route: a.route.name, subject: a.identity.subject, decision_id: a.decision.decision_id, bytes_up: closed.up, bytes_down: closed.down, ms, reason: closed.reason });
      await deps.sql`UPDATE zt_proxy.tunnels SET closed_at = now(), bytes_up = ${closed.up}, bytes_down = ${closed.down}, close_reason = ${closed.reason.slice(0, 256)}
        WHERE decision_id = ${a.decision.decision_id}`.catch((e: unknown) => deps.log.warn("proxy: could not record a tunnel's close", { err: (e as Error).message }));
    })().catch((e: unknown) => {
      deps.log.error("proxy: tunnel failed", { err: e });
      socket.destroy();
    });
  };
}
