// The Hono environment shared by every route of the engine: Node bindings plus the
// per-request variables set by the identity gate (identity-gate.ts) and app.ts.
import type { HttpBindings } from "@hono/node-server";
import type { Caller } from "../identity/caller.js";
import type { Extension } from "./extension.js";

export interface EngineVariables {
  /** The x-request-id of this request (given by the client or generated). */
  requestId: string;
  /** The verified caller (from the connection, and the admin token), set by the identity gate before any route runs. */
  identity: Caller;
  /** Its label (`mtls:<id>`, `mtls:<id>+admin-token`, `plaintext:<addr>`...): logs, audit records, `created_by`. */
  caller: string | null;
  /** The extension that claimed this request whole, if any. */
  claimedBy: Extension | null;
}

export interface EngineEnv {
  Bindings: HttpBindings;
  Variables: EngineVariables;
}
