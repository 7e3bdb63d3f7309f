// How the other front rooms (operator proxy, console, rollout tools, sidecar sync) join the
// engine's API listener without the HTTP room importing them: the composition root (cli/serve.ts)
// passes `extensions` to startEngine; each gets the engine's core once it exists and returns a Hono
// app mounted beside the API routes, and optionally claims whole requests first (e.g. by Host
// header, for the proxy's public hostnames). Every route and claim needs its line in
// ROUTE_IDENTITY (route-identity.ts), or the engine does not start.
import type { Server } from "node:http";
import type { SecureContext } from "node:tls";
import type { Hono, MiddlewareHandler } from "hono";
import type { RolloutMode } from "../../compiler/model.js";
import type { AuditSink } from "../audit/record.js";
import type { Logger } from "../common/logger.js";
import type { IncidentStore } from "../engine/incidents.js";
import type { PolicyStore } from "../engine/policy-store.js";
import type { SharedState } from "../engine/shared-state.js";
import type { EngineMetrics } from "../metrics/metrics.js";
import type { EngineEnv } from "./context.js";

/** What an extension may use of the running engine. */
export interface EngineCore {
  readonly store: PolicyStore;
  readonly incidents: IncidentStore;
  /** The shared state: policy writes, history, rollback, incidents, rollout settings, replicas. */
  readonly state: SharedState;
  readonly sink: AuditSink;
  readonly metrics: EngineMetrics;
  readonly log: Logger;
  readonly mode: RolloutMode;
  /**
   * A re-check that the caller is an admin. What a route needs is declared by its line in
   * ROUTE_IDENTITY (route-identity.ts; host/http/README.md "A new route"), and the identity gate
   * enforces it before the route runs; this is only belt and braces for routes that had it.
   */
  readonly admin: MiddlewareHandler<EngineEnv>;
}

/**
 * Public TLS names an extension serves with a certificate of its own (the proxy's hosts, for
 * browsers, who hold no SVID and do not trust the engine's). Which requests such a connection
 * may make is the identity gate's to say, as for any connection without an SVID.
 */
export interface ExtensionTls {
  serves(servername: string): boolean;
  /** The context for those names; asked at every such handshake, so a renewed certificate applies at once. */
  secureContext(): SecureContext;
}

export interface Extension {
  /** Its name, for logs. */
  readonly name: string;
  /** Routes mounted at "/" after the API's own (request ids, access log and error handling apply). */
  readonly app?: Hono<EngineEnv>;
  /**
   * A request this returns true for goes to `app` alone, before the API's routes (e.g. a proxied
   * Host), with the identity of the line `CLAIMED <name>`; its handlers read the caller with callerOf(c).
   */
  claims?(req: Request): boolean;
  /** Its own TLS names on the API listener (mTLS mode only; see ExtensionTls). */
  readonly tls?: ExtensionTls;
  /** Called with the API server once it listens (e.g. for `upgrade` / `connect` events). */
  onServer?(server: Server): void;
  /** Awaited on shutdown, after the API stopped accepting requests. */
  close?(): Promise<void>;
}

export type ExtensionFactory = (core: EngineCore) => Extension | Promise<Extension>;
