// The shared state's schema (`zt_state`), its own migration track beside the audit trail's.
// It runs at start-up as the owner role (embedded: zt_audit_owner; external:
// ZT_AUDIT_MIGRATE_DSN), once per version, under host/common/migrations.ts's advisory lock.
//
// History is append-only, as in the audit trail: the engine's group role may INSERT and
// SELECT the version tables but never UPDATE, DELETE or TRUNCATE them, and triggers refuse it
// to everyone else. The only rows the engine changes are the revision counter (forward by
// exactly one, under its row lock: that lock orders every write) and its own heartbeat.
import type { Sql } from "postgres";
import { latestVersion, requireCurrentSchema, runMigrations, type MigrationResult, type MigrationTrack } from "../common/migrations.js";

export const STATE_SCHEMA = "zt_state";
/** Group role of the engine on the shared state (granted to the engine's login role). */
export const STATE_WRITER_GROUP = "zt_state_writer";
/** The NOTIFY channel of the change feed; the payload is the committed revision. */
export const STATE_CHANNEL = "zt_state";

const S = STATE_SCHEMA;

const V1_SCHEMA = `
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${STATE_WRITER_GROUP}') THEN
    CREATE ROLE ${STATE_WRITER_GROUP} NOLOGIN;
  END IF;
END
$roles$;

-- One row: the revision of the shared state. Every write takes its row lock, moves it forward
-- by one and stamps its rows with the new value, so revisions are in commit order and a
-- replica that has applied revision r has seen every row with rev <= r.
CREATE TABLE ${S}.revision (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  rev bigint  NOT NULL CHECK (rev >= 0)
);
INSERT INTO ${S}.revision (one, rev) VALUES (true, 0);

-- Every policy change, newest last; a replica serves each name's latest row (a delete is a
-- row without a document). (name, seq) is the name's own history; rev orders all changes.
CREATE TABLE ${S}.policy_versions (
  name        text        NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$'),
  seq         integer     NOT NULL CHECK (seq >= 1),
  rev         bigint      NOT NULL UNIQUE,
  action      text        NOT NULL CHECK (action IN ('put', 'delete', 'rollback')),
  document    text,
  sha256      text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  rollback_of integer,
  author      text,
  message     text        CHECK (length(message) <= 1024),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, seq),
  CHECK ((action = 'delete') = (document IS NULL)),
  CHECK ((document IS NULL) = (sha256 IS NULL)),
  CHECK ((action = 'rollback') = (rollback_of IS NOT NULL))
);

-- Incidents as events: each row is the incident's whole state after the change; the latest
-- row of an id is current, and a 'close' row ends it.
CREATE TABLE ${S}.incident_events (
  rev         bigint      PRIMARY KEY,
  incident_id text        NOT NULL CHECK (incident_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
  action      text        NOT NULL CHECK (action IN ('open', 'update', 'close')),
  description text        CHECK (length(description) <= 1024),
  opened_at   timestamptz NOT NULL,
  expires_at  timestamptz,
  created_by  text,
  author      text,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_events_id_idx ON ${S}.incident_events (incident_id, rev DESC);

-- Rollout settings: each row is the complete settings after a change; the latest is current.
-- mode: the global mode (NULL: each replica's ZT_MODE); destinations: [{destination, mode}];
-- canary: [{destination, replicas}] (enforce on that many live replicas, observe on the rest).
CREATE TABLE ${S}.rollout_settings (
  rev          bigint      PRIMARY KEY,
  mode         text        CHECK (mode IN ('enforce', 'observe')),
  destinations jsonb       NOT NULL CHECK (jsonb_typeof(destinations) = 'array'),
  canary       jsonb       NOT NULL CHECK (jsonb_typeof(canary) = 'array'),
  author       text,
  message      text        CHECK (length(message) <= 1024),
  at           timestamptz NOT NULL DEFAULT now()
);

-- Which replica serves what: one row per replica, replaced by its heartbeat.
CREATE TABLE ${S}.replicas (
  id           text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 253),
  started_at   timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL,
  status       jsonb       NOT NULL
);

CREATE FUNCTION ${S}.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'the shared state keeps its history: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE FUNCTION ${S}.revision_forward() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.rev <> OLD.rev + 1 THEN
    RAISE EXCEPTION 'the state revision only moves forward by one (% -> % refused)', OLD.rev, NEW.rev
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$fn$;

CREATE TRIGGER revision_forward BEFORE UPDATE ON ${S}.revision FOR EACH ROW EXECUTE FUNCTION ${S}.revision_forward();
CREATE TRIGGER revision_keep BEFORE DELETE ON ${S}.revision FOR EACH ROW EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER revision_no_truncate BEFORE TRUNCATE ON ${S}.revision FOR EACH STATEMENT EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON ${S}.policy_versions FOR EACH ROW EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER policy_versions_no_truncate BEFORE TRUNCATE ON ${S}.policy_versions FOR EACH STATEMENT EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON ${S}.incident_events FOR EACH ROW EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER incident_events_no_truncate BEFORE TRUNCATE ON ${S}.incident_events FOR EACH STATEMENT EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER rollout_settings_append_only BEFORE UPDATE OR DELETE ON ${S}.rollout_settings FOR EACH ROW EXECUTE FUNCTION ${S}.refuse_change();
CREATE TRIGGER rollout_settings_no_truncate BEFORE TRUNCATE ON ${S}.rollout_settings FOR EACH STATEMENT EXECUTE FUNCTION ${S}.refuse_change();

REVOKE ALL ON FUNCTION ${S}.refuse_change() FROM PUBLIC;
REVOKE ALL ON FUNCTION ${S}.revision_forward() FROM PUBLIC;

GRANT USAGE ON SCHEMA ${S} TO ${STATE_WRITER_GROUP};
GRANT SELECT, INSERT ON ${S}.policy_versions, ${S}.incident_events, ${S}.rollout_settings TO ${STATE_WRITER_GROUP};
GRANT SELECT, UPDATE ON ${S}.revision TO ${STATE_WRITER_GROUP};
GRANT SELECT, INSERT, UPDATE, DELETE ON ${S}.replicas TO ${STATE_WRITER_GROUP};
GRANT SELECT ON ${S}.schema_migrations TO ${STATE_WRITER_GROUP};
`;

/** The shared state's track of versioned migrations (host/common/migrations.ts runs it). */
export const STATE_TRACK: MigrationTrack = {
  schema: STATE_SCHEMA,
  label: "state",
  migrations: [{ version: 1, name: "shared state: policy versions, incidents, rollout, replicas", sql: V1_SCHEMA }],
};

export const STATE_LATEST_VERSION = latestVersion(STATE_TRACK);

/** Applies pending state migrations as the owner role; a no-op when current. */
export function migrateState(sql: Sql): Promise<MigrationResult> {
  return runMigrations(sql, STATE_TRACK);
}

/** For an engine role that may not migrate: the schema must already be current. */
export function checkStateSchema(sql: Sql): Promise<void> {
  return requireCurrentSchema(sql, STATE_TRACK, "run zt serve once with ZT_AUDIT_MIGRATE_DSN (an owner role) or apply the migrations");
}
