// The shared state in PostgreSQL: what every replica reads and any replica writes. A write is
// one transaction that moves the revision forward (its row lock orders all writes, so
// preconditions are checked against the latest committed state), appends its rows and
// NOTIFYs the revision; PostgreSQL delivers the notification only if the transaction commits.
// Reads of changes run in one REPEATABLE READ snapshot, so a replica never applies half a write.
import type postgres from "postgres";
import type { Sql, TransactionSql } from "postgres";
import { connect } from "../audit/connect.js";
import type { RolloutMode } from "../../compiler/model.js";
import { reachable } from "./errors.js";
import { STATE_CHANNEL, STATE_SCHEMA as S } from "./migrations.js";
import type { CanaryEntry, DestinationMode, IncidentHead, IncidentRecord, PolicyVersion, ReplicaRow, ReplicaStatus, RolloutSettings, StateChanges } from "./types.js";

/** A connection pool on the state: the audit trail's connection settings (no array-type query at connect). */
export function connectState(dsn: string, max: number, app: string): Sql {
  return connect(dsn, max, app);
}

/** A write's precondition on the policy's current document (HTTP If-Match / If-None-Match). */
export interface Precondition {
  /** The current sha256 must be this one; "*": the policy must exist. */
  ifMatch?: string | null;
  /** The policy must not exist (If-None-Match: *). */
  ifNoneMatch?: boolean;
}

export interface PolicyWrite {
  name: string;
  action: "put" | "delete" | "rollback";
  document: string | null;
  sha256: string | null;
  rollbackOf?: number | null;
  author: string | null;
  message: string | null;
}

export type PolicyCommit =
  | { ok: true; rev: number; version: PolicyVersion; previous: PolicyVersion | null }
  | { ok: false; reason: "precondition_failed"; current: PolicyVersion | null }
  | { ok: false; reason: "not_found" };

export interface IncidentInput {
  description?: string | null;
  expires_at?: string | null;
}

export type IncidentCommit = { ok: true; rev: number; created: boolean; incident: IncidentRecord } | { ok: false; reason: "not_found" };

export interface RolloutWrite {
  mode: RolloutMode | null;
  destinations: DestinationMode[];
  canary: CanaryEntry[];
  author: string | null;
  message: string | null;
}

export type RolloutCommit = { ok: true; rev: number; settings: RolloutSettings } | { ok: false; reason: "precondition_failed"; current: RolloutSettings };

/** Rolls a write transaction back with a result instead of an error. */
class Abort<T> {
  constructor(readonly result: T) {}
}

interface PolicyRow {
  name: string;
  seq: number;
  rev: string | number;
  action: PolicyVersion["action"];
  document: string | null;
  sha256: string | null;
  rollback_of: number | null;
  author: string | null;
  message: string | null;
  created_at: Date;
}

interface IncidentRow {
  rev: string | number;
  incident_id: string;
  action: string;
  description: string | null;
  opened_at: Date;
  expires_at: Date | null;
  created_by: string | null;
  at: Date;
}

interface RolloutRow {
  rev: string | number;
  mode: RolloutMode | null;
  destinations: DestinationMode[];
  canary: CanaryEntry[];
  author: string | null;
  message: string | null;
  at: Date;
}

const POLICY_COLUMNS = "name, seq, rev, action, document, sha256, rollback_of, author, message, created_at";
const POLICY_HEAD_COLUMNS = "name, seq, rev, action, NULL::text AS document, sha256, rollback_of, author, message, created_at";

function iso(d: Date | string | null): string | null {
  if (d === null) return null;
  return (d instanceof Date ? d : new Date(d)).toISOString();
}

function policyVersion(r: PolicyRow): PolicyVersion {
  return {
    name: r.name,
    seq: r.seq,
    rev: Number(r.rev),
    action: r.action,
    document: r.document,
    sha256: r.sha256,
    rollback_of: r.rollback_of,
    author: r.author,
    message: r.message,
    created_at: iso(r.created_at)!,
  };
}

function incidentHead(r: IncidentRow): IncidentHead {
  return {
    rev: Number(r.rev),
    closed: r.action === "close",
    incident: {
      id: r.incident_id,
      description: r.description,
      created_at: iso(r.opened_at)!,
      updated_at: iso(r.at)!,
      expires_at: iso(r.expires_at),
      created_by: r.created_by,
    },
  };
}

function rolloutSettings(r: RolloutRow): RolloutSettings {
  return { rev: Number(r.rev), mode: r.mode, destinations: r.destinations, canary: r.canary, author: r.author, message: r.message, at: iso(r.at) };
}

export class StateStore {
  constructor(
    /** The engine role's pool. */
    readonly sql: Sql,
  ) {}

  /** The store's revision and whether a session with `feedApp` as application_name is connected (the feed). */
  async check(feedApp: string): Promise<{ rev: number; feedAlive: boolean }> {
    return reachable("check", async () => {
      const [row] = await this.sql<{ rev: string; feed: boolean }[]>`
        SELECT rev, EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = ${feedApp}) AS feed FROM ${this.sql(S)}.revision`;
      return { rev: Number(row!.rev), feedAlive: row!.feed };
    });
  }

  /**
   * Every change after revision `after`, in one snapshot: each changed policy's and incident's
   * latest row, and the rollout settings if they changed. `after` 0 loads everything.
   */
  changesSince(after: number): Promise<StateChanges> {
    return reachable("changesSince", () =>
      this.sql.begin("isolation level repeatable read read only", async (tx) => {
        const [r] = await tx<{ rev: string }[]>`SELECT rev FROM ${tx(S)}.revision`;
        const rev = Number(r!.rev);
        if (rev === after) return { rev, policies: [], incidents: [], rollout: null, full: after === 0 };
        // A store behind this replica (restored from a backup) is loaded in full.
        const from = rev < after ? 0 : after;
        const policies = await tx.unsafe<PolicyRow[]>(
          `SELECT DISTINCT ON (name) ${POLICY_COLUMNS} FROM ${S}.policy_versions WHERE rev > $1 ORDER BY name, seq DESC`,
          [from],
        );
        const incidents = await tx.unsafe<IncidentRow[]>(
          `SELECT DISTINCT ON (incident_id) rev, incident_id, action, description, opened_at, expires_at, created_by, at
             FROM ${S}.incident_events WHERE rev > $1 ORDER BY incident_id, rev DESC`,
          [from],
        );
        const [ro] = await tx.unsafe<RolloutRow[]>(`SELECT * FROM ${S}.rollout_settings WHERE rev > $1 ORDER BY rev DESC LIMIT 1`, [from]);
        return {
          rev,
          policies: policies.map(policyVersion),
          incidents: incidents.map(incidentHead),
          rollout: ro ? rolloutSettings(ro) : null,
          full: from === 0,
        };
      }),
    );
  }

  /** A policy's history, newest first (documents left out; see policyVersion). */
  history(name: string, limit: number, beforeSeq: number | null = null): Promise<PolicyVersion[]> {
    return reachable("history", async () => {
      const rows = await this.sql.unsafe<PolicyRow[]>(
        `SELECT ${POLICY_HEAD_COLUMNS} FROM ${S}.policy_versions WHERE name = $1 AND ($2::integer IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3`,
        [name, beforeSeq, limit],
      );
      return rows.map(policyVersion);
    });
  }

  /** One version of a policy, with its document: by seq, or the newest with a given sha256. */
  version(name: string, at: { seq: number } | { sha256: string }): Promise<PolicyVersion | null> {
    return reachable("version", async () => {
      const rows =
        "seq" in at
          ? await this.sql.unsafe<PolicyRow[]>(`SELECT ${POLICY_COLUMNS} FROM ${S}.policy_versions WHERE name = $1 AND seq = $2`, [name, at.seq])
          : await this.sql.unsafe<PolicyRow[]>(`SELECT ${POLICY_COLUMNS} FROM ${S}.policy_versions WHERE name = $1 AND sha256 = $2 ORDER BY seq DESC LIMIT 1`, [name, at.sha256]);
      return rows[0] ? policyVersion(rows[0]) : null;
    });
  }

  /** Appends a policy version if the precondition holds against the latest committed one. */
  commitPolicy(w: PolicyWrite, pre: Precondition = {}): Promise<PolicyCommit> {
    return this.write<PolicyCommit>(async (tx, rev) => {
      const [head] = await tx.unsafe<PolicyRow[]>(`SELECT ${POLICY_COLUMNS} FROM ${S}.policy_versions WHERE name = $1 ORDER BY seq DESC LIMIT 1`, [w.name]);
      const current = head ? policyVersion(head) : null;
      const live = current !== null && current.action !== "delete";
      if (w.action === "delete" && !live) return new Abort({ ok: false, reason: "not_found" });
      if (pre.ifNoneMatch && live) return new Abort({ ok: false, reason: "precondition_failed", current });
      if (pre.ifMatch != null && (!live || (pre.ifMatch !== "*" && pre.ifMatch !== current.sha256))) {
        return new Abort({ ok: false, reason: "precondition_failed", current });
      }
      const [row] = await tx.unsafe<PolicyRow[]>(
        `INSERT INTO ${S}.policy_versions (name, seq, rev, action, document, sha256, rollback_of, author, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${POLICY_COLUMNS}`,
        [w.name, (current?.seq ?? 0) + 1, rev, w.action, w.document, w.sha256, w.rollbackOf ?? null, w.author, w.message],
      );
      return { ok: true, rev, version: policyVersion(row!), previous: live ? current : null };
    });
  }

  /** Opens or updates an incident (fields not given keep their value). */
  putIncident(id: string, input: IncidentInput, author: string | null): Promise<IncidentCommit> {
    return this.write<IncidentCommit>(async (tx, rev) => {
      const [head] = await tx.unsafe<IncidentRow[]>(
        `SELECT rev, incident_id, action, description, opened_at, expires_at, created_by, at FROM ${S}.incident_events WHERE incident_id = $1 ORDER BY rev DESC LIMIT 1`,
        [id],
      );
      const open = head !== undefined && head.action !== "close";
      const [row] = await tx.unsafe<IncidentRow[]>(
        `INSERT INTO ${S}.incident_events (rev, incident_id, action, description, opened_at, expires_at, created_by, author)
         VALUES ($1, $2, $3, $4, COALESCE($5::timestamptz, now()), $6, $7, $8)
         RETURNING rev, incident_id, action, description, opened_at, expires_at, created_by, at`,
        [
          rev,
          id,
          open ? "update" : "open",
          input.description !== undefined ? input.description : open ? head.description : null,
          open ? iso(head.opened_at) : null,
          input.expires_at !== undefined ? input.expires_at : open ? iso(head.expires_at) : null,
          open ? head.created_by : author,
          author,
        ],
      );
      return { ok: true, rev, created: !open, incident: incidentHead(row!).incident };
    });
  }

  /** Closes an open incident. */
  closeIncident(id: string, author: string | null): Promise<IncidentCommit> {
    return this.write<IncidentCommit>(async (tx, rev) => {
      const [head] = await tx.unsafe<IncidentRow[]>(
        `SELECT rev, incident_id, action, description, opened_at, expires_at, created_by, at FROM ${S}.incident_events WHERE incident_id = $1 ORDER BY rev DESC LIMIT 1`,
        [id],
      );
      if (!head || head.action === "close") return new Abort({ ok: false, reason: "not_found" });
      const [row] = await tx.unsafe<IncidentRow[]>(
        `INSERT INTO ${S}.incident_events (rev, incident_id, action, description, opened_at, expires_at, created_by, author)
         VALUES ($1, $2, 'close', $3, $4, $5, $6, $7)
         RETURNING rev, incident_id, action, description, opened_at, expires_at, created_by, at`,
        [rev, id, head.description, iso(head.opened_at), iso(head.expires_at), head.created_by, author],
      );
      return { ok: true, rev, created: false, incident: incidentHead(row!).incident };
    });
  }

  /** The current rollout settings (the defaults when none were written). */
  rollout(): Promise<RolloutSettings | null> {
    return reachable("rollout", async () => {
      const [row] = await this.sql.unsafe<RolloutRow[]>(`SELECT * FROM ${S}.rollout_settings ORDER BY rev DESC LIMIT 1`);
      return row ? rolloutSettings(row) : null;
    });
  }

  /** Replaces the rollout settings; `ifMatchRev` (the settings' ETag) must be the current settings' revision. */
  commitRollout(w: RolloutWrite, ifMatchRev: number | null): Promise<RolloutCommit> {
    return this.write<RolloutCommit>(async (tx, rev) => {
      const [cur] = await tx.unsafe<RolloutRow[]>(`SELECT * FROM ${S}.rollout_settings ORDER BY rev DESC LIMIT 1`);
      const current: RolloutSettings = cur ? rolloutSettings(cur) : { rev: 0, mode: null, destinations: [], canary: [], author: null, message: null, at: null };
      if (ifMatchRev !== null && ifMatchRev !== current.rev) return new Abort({ ok: false, reason: "precondition_failed", current });
      const [row] = await tx.unsafe<RolloutRow[]>(
        `INSERT INTO ${S}.rollout_settings (rev, mode, destinations, canary, author, message) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6) RETURNING *`,
        [rev, w.mode, this.sql.json(w.destinations as unknown as postgres.JSONValue), this.sql.json(w.canary as unknown as postgres.JSONValue), w.author, w.message],
      );
      return { ok: true, rev, settings: rolloutSettings(row!) };
    });
  }

  /** Records this replica's state; returns every replica seen in the last day, by the database's clock. */
  heartbeat(id: string, startedAt: string, status: ReplicaStatus): Promise<ReplicaRow[]> {
    return reachable("heartbeat", async () => {
      await this.sql.unsafe(
        `INSERT INTO ${S}.replicas (id, started_at, heartbeat_at, status) VALUES ($1, $2, now(), $3::jsonb)
         ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at, heartbeat_at = now(), status = EXCLUDED.status`,
        [id, startedAt, this.sql.json(status as unknown as postgres.JSONValue)],
      );
      return this.replicasQuery();
    });
  }

  replicas(): Promise<ReplicaRow[]> {
    return reachable("replicas", () => this.replicasQuery());
  }

  /** A replica that stops cleanly leaves the live set at once (and with it any canary role). */
  deregister(id: string): Promise<void> {
    return reachable("deregister", async () => {
      await this.sql.unsafe(`DELETE FROM ${S}.replicas WHERE id = $1`, [id]);
    });
  }

  private async replicasQuery(): Promise<ReplicaRow[]> {
    // Rows not heard from for a week are removed by whichever replica asks.
    await this.sql.unsafe(`DELETE FROM ${S}.replicas WHERE heartbeat_at < now() - interval '7 days'`);
    const rows = await this.sql.unsafe<Array<{ id: string; started_at: Date; heartbeat_at: Date; age: number; status: ReplicaStatus }>>(
      `SELECT id, started_at, heartbeat_at, extract(epoch FROM now() - heartbeat_at)::float8 AS age, status
         FROM ${S}.replicas WHERE heartbeat_at > now() - interval '1 day' ORDER BY id`,
    );
    return rows.map((r) => ({ id: r.id, started_at: iso(r.started_at)!, heartbeat_at: iso(r.heartbeat_at)!, age_seconds: Math.max(0, r.age), status: r.status }));
  }

  /** One write: takes the revision lock, moves it forward, runs `f`, notifies; an Abort rolls back. */
  private async write<T>(f: (tx: TransactionSql, rev: number) => Promise<T | Abort<T>>): Promise<T> {
    return reachable("write", async () => {
      try {
        return (await this.sql.begin(async (tx) => {
          const [r] = await tx.unsafe<{ rev: string }[]>(`UPDATE ${S}.revision SET rev = rev + 1 RETURNING rev`);
          const rev = Number(r!.rev);
          const out = await f(tx, rev);
          if (out instanceof Abort) throw out;
          // Delivered when (and only if) the transaction commits.
          await tx.unsafe(`SELECT pg_notify($1, $2)`, [STATE_CHANNEL, String(rev)]);
          return out;
        })) as T;
      } catch (e) {
        if (e instanceof Abort) return e.result as T;
        throw e;
      }
    });
  }
}
