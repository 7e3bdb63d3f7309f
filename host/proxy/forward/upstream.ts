// How the proxy reaches each route's upstream: TLS options per route (the engine's SVID as the
// client certificate unless the route says `credential: none`; a SPIFFE upstream verified with
// the engine's trust bundle and its expected SPIFFE ID, any other against its CA file and host
// name), a keep-alive agent per route for HTTP, rebuilt when the SVID rotates; and the route's
// bearer token file, re-read when it changes (projected service account tokens rotate).
import { readFileSync, statSync } from "node:fs";
import * as https from "node:https";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import type { AccessRoute } from "../../../compiler/access-route/model.js";
import { spiffeServerIdentity, type IdentitySource } from "../../identity/tls.js";

export class UpstreamUnavailableError extends Error {}

export interface Upstreams {
  /** TLS options for a connection to the route's upstream (HTTP agent or tunnel). */
  tlsOptions(route: AccessRoute, servername: string): ConnectionOptions;
  /** The keep-alive agent of an HTTP route. */
  agent(route: AccessRoute & { kind: "http" }): https.Agent;
  /** The route's bearer token (file contents, trimmed), or null. */
  bearerToken(route: AccessRoute): string | null;
  close(): void;
}

/** Tokens are re-read at most this often (a changed file is picked up within it). */
const TOKEN_CHECK_MS = 10_000;

export function createUpstreams(identity: IdentitySource | null): Upstreams {
  let agents = new Map<string, https.Agent>();
  const tokens = new Map<string, { value: string; checkedAt: number; mtimeMs: number }>();
  const cas = new Map<string, string>();

  const dropAgents = (): void => {
    const old = agents;
    agents = new Map();
    // Requests in flight (a long `kubectl logs -f`) keep their connections to the end; idle
    // connections close now, and busy ones close when released instead of being reused.
    for (const a of old.values()) {
      (a as unknown as { keepAlive: boolean }).keepAlive = false;
      for (const list of Object.values(a.freeSockets)) for (const sock of list ?? []) sock.destroy();
    }
  };
  const unsubscribe = identity?.on("rotate", dropAgents) ?? (() => undefined);

  const tlsOptions = (route: AccessRoute, servername: string): ConnectionOptions => {
    const opts: ConnectionOptions = { minVersion: "TLSv1.2" };
    if (isIP(servername) === 0) opts.servername = servername;
    if (route.credential.svid || route.upstreamSpiffeId !== null) {
      if (identity === null || identity.current() === null) throw new UpstreamUnavailableError("the engine has no SVID to present to the upstream (set ZT_SPIRE_SOCKET or ZT_TLS_*)");
      const sc = identity.secureContextOptions();
      if (route.credential.svid) {
        opts.cert = sc.cert;
        opts.key = sc.key;
      }
      if (route.upstreamSpiffeId !== null) {
        opts.ca = sc.ca;
        opts.checkServerIdentity = spiffeServerIdentity(route.upstreamSpiffeId);
      }
    }
    if (route.caFile !== null) {
      let ca = cas.get(route.caFile);
      if (ca === undefined) {
        ca = readFileSync(route.caFile, "utf8");
        cas.set(route.caFile, ca);
      }
      opts.ca = ca;
    }
    return opts;
  };

  return {
    tlsOptions,
    agent(route) {
      let a = agents.get(route.name);
      if (a === undefined) {
        // No timeouts: `kubectl logs -f` and event streams stay open as long as both ends want.
        a = new https.Agent({ ...tlsOptions(route, route.upstream.hostname), keepAlive: true, scheduling: "lifo" });
        agents.set(route.name, a);
      }
      return a;
    },
    bearerToken(route) {
      const file = route.credential.bearerTokenFile;
      if (file === null) return null;
      const now = Date.now();
      const t = tokens.get(file);
      if (t && now - t.checkedAt < TOKEN_CHECK_MS) return t.value;
      let mtimeMs: number;
      try {
        mtimeMs = statSync(file).mtimeMs;
      } catch (e) {
        throw new UpstreamUnavailableError(`the route's bearer token file cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
      }
      if (t && t.mtimeMs === mtimeMs) {
        t.checkedAt = now;
        return t.value;
      }
      const value = readFileSync(file, "utf8").trim();
      tokens.set(file, { value, checkedAt: now, mtimeMs });
      return value;
    },
    close() {
      unsubscribe();
      for (const a of agents.values()) a.destroy();
      agents = new Map();
    },
  };
}
