// What every console handler sees: the engine's core, the audit trail, the
// session keys and the asset table; and the per-request session set by auth.ts.
import type { HttpBindings } from "@hono/node-server";
import type { Audit } from "../audit/index.js";
import type { EngineVariables } from "../http/context.js";
import type { EngineCore } from "../http/extension.js";
import type { Candidates } from "../rollout/candidates.js";
import type { Assets } from "./assets.js";
import type { ProxySignIn } from "./proxy-session.js";
import type { Session, SessionKeys } from "./session.js";

export interface ConsoleVariables extends EngineVariables {
  /** The signed-in operator; set for every route behind requireSession. */
  session: Session | null;
}

export interface ConsoleEnv {
  Bindings: HttpBindings;
  Variables: ConsoleVariables;
}

export type ConsoleAudit = Pick<Audit, "query" | "sink">;

export interface ConsoleDeps {
  readonly core: EngineCore;
  /** The PostgreSQL trail: its read pool (the engine role: SELECT and INSERT only) and its writer's state. */
  readonly audit: ConsoleAudit;
  readonly keys: SessionKeys;
  readonly assets: Assets;
  /** Constant-time check of a token typed on the login page against the admin token. */
  readonly isAdminToken: (token: string) => boolean;
  /** Where candidates (policy tests, diffs, replays, history comparisons) are built: off the serving thread. */
  readonly candidates: Candidates;
  /** Largest form body accepted (policy tests, candidates). */
  readonly maxBodyBytes: number;
  /** Sign-in through the operator access proxy (its signed assertion), when it is configured. */
  readonly proxySignIn: ProxySignIn | null;
  /** The trail's database for replay and suggest (each run on a connection of its own; the engine's role); null: they say it is missing. */
  readonly trailDsn: string | null;
  /** The mesh agents' /metrics URLs (ZT_CONSOLE_MESH_METRICS); empty: WireGuard peers are "not configured". */
  readonly meshMetrics: readonly string[];
}
