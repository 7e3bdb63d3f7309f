// The front rooms `zt serve` mounts on the API listener, in order. Each route they register
// needs its line in ROUTE_IDENTITY (host/http/route-identity.ts); test/http/route-identity.test.ts
// mounts this same list, so every route `zt serve` serves is tested there against its rule.
import type { EngineConfig } from "../common/config.js";
import type { Audit } from "../audit/index.js";
import { consoleExtension, type ConsoleOptions } from "../console/extension.js";
import type { ExtensionFactory } from "../http/extension.js";
import { rolloutExtension } from "../rollout/extension.js";
import { proxyExtension, type ProxyOptions } from "../proxy/index.js";

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
  const list = [
    rolloutExtension({ maxBodyBytes, trailDsn: deps.audit.connections.engine }),
    consoleExtension({ audit: deps.audit, adminToken: deps.adminToken, maxBodyBytes, meshMetrics: deps.config.consoleMeshMetrics, trailDsn: deps.audit.connections.engine }),
  ];
  return deps.proxy ? [...list, proxyExtension(deps.proxy)] : list;
}
