// The Hono environment shared by every route of the engine: Node bindings plus the
// per-request variables set by the middleware in app.ts and auth.ts.
import type { HttpBindings } from "@hono/node-server";

export interface EngineVariables {
  /** The x-request-id of this request (given by the client or generated). */
  requestId: string;
  /** Who the admin middleware authenticated (e.g. "admin-token"); null when nobody. */
  caller: string | null;
}

export interface EngineEnv {
  Bindings: HttpBindings;
  Variables: EngineVariables;
}
