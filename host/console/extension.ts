// The console joins the engine's API listener as an extension (host/http/extension.ts):
// `zt serve` mounts it; nothing else imports this room.
import type { Hono } from "hono";
import type { EngineEnv } from "../http/context.js";
import { Candidates, type CandidatesOptions } from "../rollout/candidates.js";
import type { Extension, ExtensionFactory } from "../http/extension.js";
import { consoleApp } from "./app.js";
import { loadAssets } from "./assets.js";
import type { ProxySignIn } from "./proxy-session.js";
import type { ConsoleAudit } from "./context.js";
import { sameSecret, SessionKeys } from "./session.js";

export interface ConsoleOptions {
  /** The PostgreSQL audit trail (openAudit()). */
  audit: ConsoleAudit;
  /** The admin token: what the sign-in page accepts, and the root of the session signing key. */
  adminToken: string;
  /** Largest form body (policy tests); default 4 MiB. */
  maxBodyBytes?: number;
  /** Sign-in through the operator access proxy: its assertion keys and the audience it signs for this engine. */
  proxySignIn?: ProxySignIn | null;
  /** The trail's DSN for replay and suggest (the engine's role: SELECT on the trail). */
  trailDsn?: string | null;
  /** The mesh agents' /metrics URLs for the overview's WireGuard peers (ZT_CONSOLE_MESH_METRICS). */
  meshMetrics?: readonly string[];
  /** Where candidates are built (host/rollout/candidates.ts): their own thread by default. */
  candidates?: Omit<CandidatesOptions, "log">;
}

export function consoleExtension(opts: ConsoleOptions): ExtensionFactory {
  return async (core): Promise<Extension> => {
    const candidates = new Candidates({ ...opts.candidates, log: core.log });
    const app = consoleApp({
      core,
      candidates,
      audit: opts.audit,
      keys: new SessionKeys(opts.adminToken),
      assets: await loadAssets(),
      isAdminToken: (token) => sameSecret(token, opts.adminToken),
      maxBodyBytes: opts.maxBodyBytes ?? 4 * 1024 * 1024,
      meshMetrics: opts.meshMetrics ?? [],
      trailDsn: opts.trailDsn ?? null,
      proxySignIn: opts.proxySignIn ?? null,
    });
    // The console's variables extend the engine's (the session); the API side sees only its own.
    return { name: "console", app: app as unknown as Hono<EngineEnv>, close: () => candidates.close() };
  };
}
