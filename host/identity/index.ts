// One call to set up the engine's identity from the environment: the serving SVID source,
// caller authentication, agent JWT verification and metrics, plus what the HTTP server needs.
import * as https from "node:https";
import type { Server as TlsServer } from "node:tls";
import type { Registry } from "prom-client";
import { parseIdentityConfig, type IdentityConfig } from "./config.js";
import { createCallerAuth, type CallerAuth } from "./caller.js";
import { createJwtVerifier, type JwtVerifier } from "./jwt.js";
import { registerIdentityMetrics, type IdentityMetrics } from "./metrics.js";
import { createPeerVerifier, type PeerRejectLog } from "./peer.js";
import { attachRotation, createIdentitySource, logHandshakeFailures, mtlsServerOptions, type IdentityLog, type IdentitySource } from "./tls.js";

export interface SetupIdentityOptions {
  readonly registry: Registry;
  /** The admin bearer token (ZT_ADMIN_TOKEN, owned by the server's config); null disables it. */
  readonly adminToken: string | null;
  readonly log?: IdentityLog;
  /**
   * Wait for the first SVID before returning (default true). The engine passes false so its
   * health port can answer 503 while SPIRE has not delivered one, and awaits
   * `source.ready()` itself before binding the API port.
   */
  readonly waitForSvid?: boolean;
}

export interface Identity {
  readonly config: IdentityConfig;
  readonly source: IdentitySource;
  readonly auth: CallerAuth;
  /** Null when ZT_JWKS_URL is unset (agent requests are then denied). */
  readonly jwt: JwtVerifier | null;
  readonly metrics: IdentityMetrics;
  /** For @hono/node-server `serve()`: HTTPS with mTLS, or null in plaintext mode (bind loopback). */
  serveOptions(): { createServer: typeof https.createServer; serverOptions: https.ServerOptions } | null;
  /**
   * After the server listens: rotate its certificate in place, validate every connection's
   * client SVID right after its handshake, and log rejected handshakes.
   */
  attach(server: TlsServer): () => void;
  close(): Promise<void>;
}

/**
 * Parses the environment (throws IdentityConfigError listing every problem), starts the
 * identity source and waits for the first SVID (SPIRE mode: until the agent provides one),
 * unless `waitForSvid` is false.
 */
export async function setupIdentity(env: Readonly<Record<string, string | undefined>>, opts: SetupIdentityOptions): Promise<Identity> {
  const config = parseIdentityConfig(env);
  const metrics = registerIdentityMetrics(opts.registry);
  const source = createIdentitySource(config.tls, { metrics, log: opts.log });
  if (opts.waitForSvid ?? true) await source.ready();
  const tls = config.tls.mode !== "plaintext";
  const log = opts.log;
  // Once per refused connection, with its address: the client only sees its 401s.
  const onReject: PeerRejectLog = ({ remote, code, reason }) => {
    metrics.peerRejections.inc({ reason: code });
    log?.("warn", "client certificate is not a valid X.509-SVID", { remote, code, reason });
  };
  const peer = tls ? createPeerVerifier(source, undefined, onReject) : null;
  const ownDomain = (): ReadonlySet<string> => {
    const td = source.current()?.trustDomain;
    return new Set(td === undefined ? [] : [td]);
  };
  const auth = createCallerAuth({
    peer,
    adminToken: opts.adminToken,
    adminSpiffeIds: config.adminSpiffeIds,
    trustedEvaluators: config.trustedEvaluators,
    readerTrustDomains: config.readerTrustDomains === null ? ownDomain : () => config.readerTrustDomains!,
    metricsAccess: config.metricsAccess,
  });
  const jwt = config.jwt ? createJwtVerifier({ ...config.jwt, metrics, log }) : null;
  return {
    config,
    source,
    auth,
    jwt,
    metrics,
    serveOptions: () => (tls ? { createServer: https.createServer, serverOptions: mtlsServerOptions(source) } : null),
    attach(server: TlsServer): () => void {
      if (!peer) return () => undefined;
      const stopRotation = attachRotation(server, source, log);
      const stopPeers = peer.attach(server);
      const stopLog = log ? logHandshakeFailures(server, log) : () => undefined;
      return () => {
        stopRotation();
        stopPeers();
        stopLog();
      };
    },
    close: () => source.close(),
  };
}

export { callerLabel, createCallerAuth, IDENTITY_RULES, type Caller, type CallerAuth, type IdentityRule, type MetricsAccess } from "./caller.js";
export { isAgentRequest, parseAgentRequest, decideAgentAccess, agentAuditFields, agentCallerLabel, type RequiredScopes, type AgentDecision } from "./agent.js";
export { parseIdentityConfig, type IdentityConfig } from "./config.js";
export { assertPlaintextHost, PLAINTEXT_WARNING, type IdentitySource, type IdentityStatus } from "./tls.js";
export { IdentityConfigError } from "./config.js";
