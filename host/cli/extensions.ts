// The front rooms `zt serve` mounts on the API listener, in order. Each route they register
// needs its line in ROUTE_IDENTITY (host/http/route-identity.ts); test/http/route-identity.test.ts
// mounts this same list, so every route `zt serve` serves is tested there against its rule.
import type { EngineConfig } from "../common/config.js";
import type { ExtensionFactory } from "../http/extension.js";
import { rolloutExtension } from "../rollout/extension.js";

export function serveExtensions(config: EngineConfig): ExtensionFactory[] {
  return [rolloutExtension({ maxBodyBytes: config.maxBodyBytes })];
}
