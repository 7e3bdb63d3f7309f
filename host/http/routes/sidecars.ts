// GET /v1/sidecars: which policy version each sidecar origin decides with, from the records
// it shipped over the recent window, and whether it has converged on the active version
// (host/engine/sidecars.ts). Admin-only like the audit reads it summarises.
import { Hono, type MiddlewareHandler } from "hono";
import type { EngineEnv } from "../context.js";
import type { SidecarRegistry } from "../../engine/sidecars.js";

export function sidecarRoutes(deps: { sidecars: SidecarRegistry; admin: MiddlewareHandler<EngineEnv> }): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  app.get("/v1/sidecars", deps.admin, (c) => c.json(deps.sidecars.snapshot()));
  return app;
}
