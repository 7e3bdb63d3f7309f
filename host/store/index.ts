// host/store: the shared state of the engine's replicas in PostgreSQL (the audit trail's
// server): policy versions with their history, incidents, rollout settings, replica
// heartbeats, the change feed and the replica's local cache of the last good state.
// May import: compiler/ (types), host/common, host/audit/connect.ts. Never: the engine, HTTP, the CLI.
import type { Sql } from "postgres";
import type { Logger } from "../common/logger.js";
import { reachable } from "./errors.js";
import { checkStateSchema, migrateState } from "./migrations.js";
import { connectState, StateStore } from "./state-store.js";

export { StateCache, CacheCorruptError, type CachedState } from "./cache.js";
export { StoreUnavailableError, isUnreachable, guardDriverWriteAfterClose, isDriverWriteAfterClose } from "./errors.js";
export { ChangeFeed, type FeedHandlers } from "./feed.js";
export { STATE_CHANNEL, STATE_SCHEMA, STATE_TRACK, STATE_WRITER_GROUP } from "./migrations.js";
export { StateStore, type IncidentCommit, type IncidentInput, type PolicyCommit, type Precondition, type RolloutCommit, type RolloutWrite } from "./state-store.js";
export * from "./types.js";

export interface StateBackendOptions {
  /** The engine's role (member of zt_state_writer). */
  engineDsn: string;
  /** The owner role that runs migrations; null: the schema must already be current. */
  ownerDsn: string | null;
  /** Names this replica's sessions (application_name `zt-state-<replica>`). */
  replicaId: string;
  log: Logger;
}

/** The store and what it needs to run: nothing connects until the first query. */
export interface StateBackend {
  readonly store: StateStore;
  /** The DSN the change feed listens with (the engine's role). */
  readonly feedDsn: string;
  /** Applies (owner) or checks (engine role) the schema; StoreUnavailableError when unreachable. */
  ensureSchema(): Promise<void>;
  close(): Promise<void>;
}

export function openStateBackend(opts: StateBackendOptions): StateBackend {
  const sql: Sql = connectState(opts.engineDsn, 3, `zt-state-${opts.replicaId}`.slice(0, 63));
  const store = new StateStore(sql);
  let ready = false;
  return {
    store,
    feedDsn: opts.engineDsn,
    async ensureSchema() {
      if (ready) return;
      if (opts.ownerDsn) {
        const owner = connectState(opts.ownerDsn, 1, "zt-state-migrate");
        try {
          const r = await reachable("migrate", () => migrateState(owner));
          if (r.applied.length > 0) opts.log.info("state: migrations applied", { versions: r.applied });
        } finally {
          await owner.end({ timeout: 5 });
        }
      } else {
        await reachable("schema check", () => checkStateSchema(sql));
      }
      ready = true;
    },
    close: () => sql.end({ timeout: 2 }),
  };
}
