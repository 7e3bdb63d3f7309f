// The proxy's routes indexed for the request path: by host, then longest path prefix (HTTP) or
// port (TCP). Built once per route-set generation; lookups are a Map hit and a short scan.
import type { AccessRoute, HttpRoute, TcpRoute } from "../../compiler/access-route/model.js";

export class RouteTable {
  /** Per host, its HTTP routes by descending prefix length (the first match is the longest). */
  private readonly http = new Map<string, HttpRoute[]>();
  private readonly tcp = new Map<string, TcpRoute>();
  readonly routes: readonly AccessRoute[];

  constructor(routes: readonly AccessRoute[]) {
    this.routes = routes;
    for (const r of routes) {
      if (r.kind === "tcp") {
        this.tcp.set(`${r.host}:${r.port}`, r);
        continue;
      }
      const list = this.http.get(r.host) ?? [];
      list.push(r);
      this.http.set(r.host, list);
    }
    for (const list of this.http.values()) list.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Is this (lower-case, port-less) host one of the proxy's public hosts? */
  hasHost(host: string): boolean {
    return this.http.has(host) || this.tcpHosts().has(host);
  }

  private tcpHostSet: Set<string> | null = null;
  private tcpHosts(): Set<string> {
    return (this.tcpHostSet ??= new Set([...this.tcp.values()].map((r) => r.host)));
  }

  /** The HTTP route for a normalised path on a host: the longest prefix that contains it. */
  httpRoute(host: string, path: string): HttpRoute | null {
    const list = this.http.get(host);
    if (list === undefined) return null;
    for (const r of list) if (prefixContains(r.prefix, path)) return r;
    return null;
  }

  tcpRoute(host: string, port: number): TcpRoute | null {
    return this.tcp.get(`${host}:${port}`) ?? null;
  }
}

/** "/grafana/" contains "/grafana", "/grafana/" and "/grafana/x", not "/grafanax". */
export function prefixContains(prefix: string, path: string): boolean {
  if (prefix === "/") return true;
  return path.startsWith(prefix) || path === prefix.slice(0, -1);
}
