// The front rooms `zt serve` mounts on the API listener, in order. Each route they register
// needs its line in ROUTE_IDENTITY (host/http/route-identity.ts); test/http/route-identity.test.ts
// mounts this same list, so every route `zt serve` serves is tested there against its rule.
import type { EngineConfig } from "../common/config.js";
import type { Audit } from "../audit/index.js";
import { consoleExtension, type ConsoleOptions } from "../console/extension.js";
import type { ExtensionFactory } from "../http/extension.js";
import { rolloutExtension } from "../rollout/extension.js";
import { type AssertionKeys, proxyExtension, type ProxyOptions } from "../proxy/index.js";

export interface ServeExtensionDeps {
  readonly config: EngineConfig;
  /** The PostgreSQL audit trail (the console reads it; replay and suggest read it on a connection of their own). */
  readonly audit: ConsoleOptions["audit"] & Pick<Audit, "connections">;
  /** The admin token (the console's sign-in). */
  readonly adminToken: string;
  /** The operator access proxy, when ZT_PROXY_ROUTES is set (docs/proxy.md). */
  readonly proxy?: ProxyOptions | null;
}

export function serveExtensions(deps: ServeExtensionDeps): ExtensionFactory[] {
  const maxBodyBytes = deps.config.maxBodyBytes;
  // The console behind the access proxy verifies the proxy's assertions with its keys, in memory;
  // the proxy is mounted after the console, so they are looked up when a request comes.
  let keys: AssertionKeys | null = null;
  const proxyKeys: AssertionKeys = {
    get issuer() {
      return keys?.issuer ?? "";
    },
    jwks: () => (keys === null ? Promise.reject(new Error("the access proxy has not started")) : keys.jwks()),
  };
  const audience = deps.config.consoleProxyAudience;
  // Candidate builds follow the policy builds' settings (ZT_BUILD_INLINE, ZT_BUILD_MEMORY_MB, ZT_BUILD_TIMEOUT_MS).
  const candidates = { inline: deps.config.buildInline, memoryMb: deps.config.buildMemoryMb, timeoutMs: deps.config.buildTimeoutMs };
  const list = [
    rolloutExtension({ maxBodyBytes, trailDsn: deps.audit.connections.engine, candidates }),
    consoleExtension({
      audit: deps.audit,
      adminToken: deps.adminToken,
      maxBodyBytes,
      meshMetrics: deps.config.consoleMeshMetrics,
      candidates,
      trailDsn: deps.audit.connections.engine,
      proxySignIn: deps.proxy && audience !== null ? { keys: proxyKeys, audience } : null,
    }),
  ];
  return deps.proxy ? [...list, proxyExtension({ ...deps.proxy, onAssertionKeys: (k) => (keys = k) })] : list;
}
