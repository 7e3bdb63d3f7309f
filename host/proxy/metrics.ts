// The proxy's Prometheus metrics, on the engine's registry. Labels are bounded: `route` is a
// route name from the route files (or "(no-route)"), `outcome` and `direction` fixed sets.
import { Counter, Gauge, type Registry } from "prom-client";

export type Outcome =
  | "allowed" // decided ALLOW (or observe mode) and proxied
  | "denied" // the policy said DENY
  | "refused" // a bad credential or request, refused before any decision
  | "login_required" // no credential: sent to sign in (302 or 401)
  | "step_up" // needs MFA: sent back to the issuer
  | "upstream_error" // allowed, but the upstream failed
  | "unavailable"; // the issuer or the audit trail could not be reached

export interface ProxyMetrics {
  request(route: string | null, outcome: Outcome): void;
  tunnelOpened(route: string): void;
  tunnelClosed(route: string, bytesUp: number, bytesDown: number): void;
  login(result: "ok" | "refused"): void;
  /** Reports live sessions by kind (read from the database by the caller, periodically). */
  sessions(counts: Readonly<Record<string, number>>): void;
}

const NO_ROUTE = "(no-route)";

export function registerProxyMetrics(registry: Registry, routeNames: () => ReadonlySet<string>): ProxyMetrics {
  const label = (route: string | null): string => (route !== null && routeNames().has(route) ? route : NO_ROUTE);
  const requests = new Counter({
    name: "zt_proxy_requests_total",
    help: "Requests and tunnels through the operator access proxy, by route and outcome",
    labelNames: ["route", "outcome"] as const,
    registers: [registry],
  });
  const sessions = new Gauge({ name: "zt_proxy_sessions", help: "Live operator sessions of the access proxy, by kind (browser, cli)", labelNames: ["kind"] as const, registers: [registry] });
  const tunnelBytes = new Counter({
    name: "zt_proxy_tunnel_bytes_total",
    help: "Bytes carried by the proxy's TCP tunnels, by route and direction (up: client to upstream)",
    labelNames: ["route", "direction"] as const,
    registers: [registry],
  });
  const tunnels = new Gauge({ name: "zt_proxy_tunnels_active", help: "Open TCP tunnels by route", labelNames: ["route"] as const, registers: [registry] });
  const logins = new Counter({ name: "zt_proxy_logins_total", help: "Completed sign-ins at the proxy by result", labelNames: ["result"] as const, registers: [registry] });
  for (const kind of ["browser", "cli"]) sessions.set({ kind }, 0);
  for (const result of ["ok", "refused"]) logins.inc({ result }, 0);
  return {
    request: (route, outcome) => requests.inc({ route: label(route), outcome }),
    tunnelOpened: (route) => tunnels.inc({ route: label(route) }),
    tunnelClosed(route, up, down) {
      const r = label(route);
      tunnels.dec({ route: r });
      tunnelBytes.inc({ route: r, direction: "up" }, up);
      tunnelBytes.inc({ route: r, direction: "down" }, down);
    },
    login: (result) => logins.inc({ result }),
    sessions(counts) {
      for (const [kind, n] of Object.entries(counts)) sessions.set({ kind }, n);
    },
  };
}
