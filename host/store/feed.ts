// The change feed: LISTEN on the state's channel over a connection of its own. A NOTIFY
// reaches only sessions connected at the time, so the feed is a shortcut, never the source of
// truth: the replica's periodic check compares revisions and asks the feed to listen again
// when its session is gone (postgres.js re-listens once after a drop and gives up if that
// fails, e.g. while the server is down).
// One driver instance for the replica's life: an instance ended while its connection is still
// starting up keeps reconnecting in the background, so instances are never replaced.
import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import type { Logger } from "../common/logger.js";
import { STATE_CHANNEL } from "./migrations.js";
import { connectState } from "./state-store.js";

export interface FeedHandlers {
  /** A committed revision was announced. */
  notified(rev: number): void;
  /** The feed (re)connected: notifications may have been missed meanwhile. */
  listening(): void;
}

export class ChangeFeed {
  /**
   * application_name of the feed's session, unique to this process (the periodic check looks
   * for it) and naming the replica for whoever reads pg_stat_activity; PostgreSQL keeps 63 bytes.
   */
  readonly app: string;
  private readonly sql: Sql;
  private unlisten: (() => Promise<unknown>) | null = null;
  private starting: Promise<void> | null = null;
  private closed = false;

  constructor(
    dsn: string,
    private readonly handlers: FeedHandlers,
    private readonly log: Logger,
    replicaId: string,
  ) {
    this.app = `zt-feed-${randomBytes(4).toString("hex")}-${replicaId}`.slice(0, 63);
    this.sql = connectState(dsn, 1, this.app);
  }

  /** Listens (again); failures are logged and left to the next periodic check. */
  restart(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.starting ??= this.listen().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.starting?.catch(() => undefined);
    await this.sql.end({ timeout: 1 }).catch(() => undefined);
  }

  private async listen(): Promise<void> {
    // The driver keeps a listener whose LISTEN it lost; drop it so notifications are not doubled.
    const previous = this.unlisten;
    this.unlisten = null;
    if (previous) await previous().catch(() => undefined);
    if (this.closed) return;
    try {
      const r = await this.sql.listen(
        STATE_CHANNEL,
        (payload) => {
          const rev = Number(payload);
          if (Number.isSafeInteger(rev)) this.handlers.notified(rev);
        },
        () => this.handlers.listening(),
      );
      this.unlisten = r.unlisten;
    } catch (e) {
      this.log.debug("state change feed not listening yet", { err: e });
    }
  }
}
