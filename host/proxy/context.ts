// The Hono environment of the proxy's app: the engine's, plus what the first middleware learnt
// about the request (public host, client address).
import type { HttpBindings } from "@hono/node-server";
import type { EngineVariables } from "../http/context.js";
import type { RequestInfo } from "./request-info.js";

export interface ProxyEnv {
  Bindings: HttpBindings;
  Variables: EngineVariables & { info: RequestInfo };
}
