// Versioned schema migrations of the audit trail. They run at start-up as the owner role
// (embedded: zt_audit_owner; external: ZT_AUDIT_MIGRATE_DSN); host/common/migrations.ts
// applies them once each, under an advisory lock.
import type { Sql } from "postgres";
import {
  latestVersion,
  requireCurrentSchema,
  runMigrations,
  type Migration,
  type MigrationResult,
  type MigrationTrack,
} from "../common/migrations.js";

export const SCHEMA = "zt_audit";
/** Group role of the engine: INSERT and SELECT on the audit table, nothing else. */
export const WRITER_GROUP = "zt_audit_writer";
/** Group role of the retention job: SELECT plus the partition-dropping function. */
export const MAINTAINER_GROUP = "zt_audit_maintainer";

const V1_SCHEMA = `
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER_GROUP}') THEN
    CREATE ROLE ${WRITER_GROUP} NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${MAINTAINER_GROUP}') THEN
    CREATE ROLE ${MAINTAINER_GROUP} NOLOGIN;
  END IF;
END
$roles$;

CREATE TABLE ${SCHEMA}.decisions (
  ts                timestamptz NOT NULL,
  decision_id       uuid        NOT NULL,
  decision          text        NOT NULL CHECK (decision IN ('ALLOW', 'DENY')),
  source_spiffe_id  text,
  source_pod        text,
  source_node       text,
  dest_spiffe_id    text,
  dest_port         integer     CHECK (dest_port BETWEEN 1 AND 65535),
  operator_subject  text,
  operator_roles    text[],
  operator_mfa      boolean,
  operator_incident text,
  target_service    text,
  target_action     text,
  policy_matched    text,
  latency_us        bigint      NOT NULL CHECK (latency_us >= 0),
  enforced          boolean     NOT NULL,
  reason            text        NOT NULL,
  policy_version    text        NOT NULL,
  origin            text        NOT NULL,
  caller            text,
  chain_id          text        NOT NULL,
  seq               bigint      NOT NULL CHECK (seq >= 1),
  prev_hash         bytea       NOT NULL,
  hash              bytea       NOT NULL,
  -- A unique constraint on a partitioned table must contain the partition key. The
  -- timestamp is part of the record, so a replayed record hits the same (ts, decision_id).
  -- The key also serves GET /v1/audit's newest-first keyset order (scanned backwards).
  PRIMARY KEY (ts, decision_id)
) PARTITION BY RANGE (ts);

-- Per-filter lookups of GET /v1/audit.
CREATE INDEX decisions_source_idx ON ${SCHEMA}.decisions (source_spiffe_id, ts DESC) WHERE source_spiffe_id IS NOT NULL;
CREATE INDEX decisions_dest_idx ON ${SCHEMA}.decisions (dest_spiffe_id, ts DESC) WHERE dest_spiffe_id IS NOT NULL;
CREATE INDEX decisions_policy_idx ON ${SCHEMA}.decisions (policy_matched, ts DESC) WHERE policy_matched IS NOT NULL;
CREATE INDEX decisions_subject_idx ON ${SCHEMA}.decisions (operator_subject, ts DESC) WHERE operator_subject IS NOT NULL;
-- zt audit verify walks each chain in order.
CREATE INDEX decisions_chain_idx ON ${SCHEMA}.decisions (chain_id, seq);

-- Records whose key (decision_id, ts) was already taken when they arrived: a sidecar
-- re-sending a batch, or (rarely) two decisions sharing an id. They keep their place in
-- their chain here instead of vanishing; GET /v1/audit shows the first copy only.
CREATE TABLE ${SCHEMA}.duplicates (LIKE ${SCHEMA}.decisions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE ${SCHEMA}.duplicates ADD PRIMARY KEY (chain_id, seq);

-- What retention removed, so verify can tell a dropped partition from a deleted row.
CREATE TABLE ${SCHEMA}.retention_log (
  partition_name text        NOT NULL,
  chain_id       text        NOT NULL,
  seqs           int8multirange NOT NULL,
  row_count      bigint      NOT NULL,
  dropped_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partition_name, chain_id)
);
-- The hash of every dropped record whose successor survived: the link verify checks across the gap.
CREATE TABLE ${SCHEMA}.retention_anchors (
  chain_id       text   NOT NULL,
  seq            bigint NOT NULL,
  hash           bytea  NOT NULL,
  partition_name text   NOT NULL,
  PRIMARY KEY (chain_id, seq)
);

CREATE FUNCTION ${SCHEMA}.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$fn$;

-- Privileges already keep the engine from changing rows; the triggers stop everyone else
-- (the owner included) unless a superuser deliberately disables them.
CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON ${SCHEMA}.decisions
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON ${SCHEMA}.decisions
  FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER duplicates_append_only BEFORE UPDATE OR DELETE ON ${SCHEMA}.duplicates
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER duplicates_no_truncate BEFORE TRUNCATE ON ${SCHEMA}.duplicates
  FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER retention_log_append_only BEFORE UPDATE OR DELETE ON ${SCHEMA}.retention_log
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER retention_anchors_append_only BEFORE UPDATE OR DELETE ON ${SCHEMA}.retention_anchors
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.refuse_change();

-- Monthly partitions are created on demand by the writer and ahead of time by maintenance.
-- SECURITY DEFINER: creating a partition needs ownership, which the engine must not have.
CREATE FUNCTION ${SCHEMA}.ensure_partition(p_ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  m     date := date_trunc('month', p_ts AT TIME ZONE 'UTC')::date;
  pname text := format('decisions_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
BEGIN
  IF p_ts > now() + interval '1 year' THEN
    RAISE EXCEPTION 'refusing to create an audit partition more than a year ahead (%)', p_ts;
  END IF;
  IF to_regclass('${SCHEMA}.' || pname) IS NOT NULL THEN
    RETURN pname;
  END IF;
  -- Serialise creators (writers, maintenance) without blocking inserts. A relation lock,
  -- unlike an advisory lock, also refreshes the catalog view, so the re-check sees a
  -- partition another session just committed.
  LOCK TABLE ${SCHEMA}.decisions IN SHARE UPDATE EXCLUSIVE MODE;
  IF to_regclass('${SCHEMA}.' || pname) IS NOT NULL THEN
    RETURN pname;
  END IF;
  EXECUTE format('CREATE TABLE ${SCHEMA}.%I PARTITION OF ${SCHEMA}.decisions FOR VALUES FROM (%L) TO (%L)',
    pname, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
  -- TRUNCATE of one partition does not fire the parent's statement trigger.
  EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ${SCHEMA}.%I FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change()', pname);
  RETURN pname;
EXCEPTION WHEN duplicate_table THEN
  RETURN pname;
END
$fn$;

-- Retention: whole monthly partitions whose every row is older than the retention period
-- are dropped (DROP, not DELETE: the append-only trigger stays meaningful). Before the drop,
-- the dropped sequence numbers and the anchor hashes are recorded for verify.
CREATE FUNCTION ${SCHEMA}.drop_expired_partitions(p_retention_days integer)
RETURNS TABLE (partition_name text, row_count bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  cutoff timestamptz;
  r      record;
  upper_bound timestamptz;
  n      bigint;
BEGIN
  IF p_retention_days IS NULL OR p_retention_days < 1 THEN
    RAISE EXCEPTION 'retention must be at least one day (got %)', p_retention_days;
  END IF;
  cutoff := now() - make_interval(days => p_retention_days);
  FOR r IN
    SELECT c.relname::text AS relname
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = '${SCHEMA}.decisions'::regclass
       AND c.relname ~ '^decisions_y[0-9]{4}m[0-9]{2}$'
     ORDER BY c.relname
  LOOP
    upper_bound := (to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    CONTINUE WHEN upper_bound > cutoff;
    EXECUTE format(
      'INSERT INTO ${SCHEMA}.retention_log (partition_name, chain_id, seqs, row_count)
       SELECT %L, chain_id, range_agg(int8range(seq, seq, ''[]'')), count(*) FROM ${SCHEMA}.%I GROUP BY chain_id',
      r.relname, r.relname);
    EXECUTE format(
      'INSERT INTO ${SCHEMA}.retention_anchors (chain_id, seq, hash, partition_name)
       SELECT p.chain_id, p.seq, p.hash, %L FROM ${SCHEMA}.%I p
        WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.%I q WHERE q.chain_id = p.chain_id AND q.seq = p.seq + 1)
       ON CONFLICT DO NOTHING',
      r.relname, r.relname, r.relname);
    EXECUTE format('SELECT count(*) FROM ${SCHEMA}.%I', r.relname) INTO n;
    EXECUTE format('DROP TABLE ${SCHEMA}.%I', r.relname);
    partition_name := r.relname;
    row_count := n;
    RETURN NEXT;
  END LOOP;
END
$fn$;

REVOKE ALL ON FUNCTION ${SCHEMA}.ensure_partition(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION ${SCHEMA}.drop_expired_partitions(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION ${SCHEMA}.refuse_change() FROM PUBLIC;

GRANT USAGE ON SCHEMA ${SCHEMA} TO ${WRITER_GROUP}, ${MAINTAINER_GROUP};
GRANT SELECT, INSERT ON ${SCHEMA}.decisions, ${SCHEMA}.duplicates TO ${WRITER_GROUP};
GRANT SELECT ON ${SCHEMA}.decisions, ${SCHEMA}.duplicates, ${SCHEMA}.retention_log, ${SCHEMA}.retention_anchors, ${SCHEMA}.schema_migrations
  TO ${WRITER_GROUP}, ${MAINTAINER_GROUP};
GRANT EXECUTE ON FUNCTION ${SCHEMA}.ensure_partition(timestamptz) TO ${WRITER_GROUP}, ${MAINTAINER_GROUP};
GRANT EXECUTE ON FUNCTION ${SCHEMA}.drop_expired_partitions(integer) TO ${MAINTAINER_GROUP};
`;

// The filter indexes in byte order (COLLATE "C"): a comparison is a memcmp instead of a
// locale-aware strcoll, which made the four indexes most of PostgreSQL's CPU per inserted row,
// and a SPIFFE pattern's literal prefix (regex ^..., LIKE 'x/%') becomes an index range.
// Keys (value, ts) are almost never equal, so deduplication only cost time. Queries compare
// with COLLATE "C" to match (query.ts).
const V2_C_COLLATION_INDEXES = `
DROP INDEX ${SCHEMA}.decisions_source_idx, ${SCHEMA}.decisions_dest_idx, ${SCHEMA}.decisions_policy_idx, ${SCHEMA}.decisions_subject_idx;
CREATE INDEX decisions_source_idx ON ${SCHEMA}.decisions (source_spiffe_id COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE source_spiffe_id IS NOT NULL;
CREATE INDEX decisions_dest_idx ON ${SCHEMA}.decisions (dest_spiffe_id COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE dest_spiffe_id IS NOT NULL;
CREATE INDEX decisions_policy_idx ON ${SCHEMA}.decisions (policy_matched COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE policy_matched IS NOT NULL;
CREATE INDEX decisions_subject_idx ON ${SCHEMA}.decisions (operator_subject COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE operator_subject IS NOT NULL;
`;

// Chains are declared before their first record is stored: the declaration (writer, start,
// predecessor) is hashed into the chain's genesis, so a chain cannot be moved to another
// lineage, and verify can tell which chain each writer run continues. Chains stored before
// this migration keep the genesis they were written with (hash_version 1).
//
// Partitions by UTC day instead of by month: retention drops whole days, so records are kept
// the retention period and at most a day longer. Monthly partitions created earlier stay until
// retention drops them; a day inside one of them is served by it.
const V3_CHAINS_AND_DAY_PARTITIONS = `
CREATE TABLE ${SCHEMA}.chains (
  chain_id      text        PRIMARY KEY,
  writer_id     text,
  started_at    timestamptz,
  hash_version  smallint    NOT NULL CHECK (hash_version IN (1, 2)),
  pred_chain_id text,
  pred_seq      bigint      CHECK (pred_seq >= 0),
  pred_hash     bytea,
  CHECK ((pred_chain_id IS NULL) = (pred_seq IS NULL) AND (pred_seq IS NULL) = (pred_hash IS NULL)),
  CHECK (hash_version = 1 OR (writer_id IS NOT NULL AND started_at IS NOT NULL))
);
CREATE TRIGGER chains_append_only BEFORE UPDATE OR DELETE ON ${SCHEMA}.chains
  FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER chains_no_truncate BEFORE TRUNCATE ON ${SCHEMA}.chains
  FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER retention_log_no_truncate BEFORE TRUNCATE ON ${SCHEMA}.retention_log
  FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change();
CREATE TRIGGER retention_anchors_no_truncate BEFORE TRUNCATE ON ${SCHEMA}.retention_anchors
  FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change();
INSERT INTO ${SCHEMA}.chains (chain_id, hash_version)
SELECT chain_id, 1 FROM (
  SELECT DISTINCT chain_id FROM ${SCHEMA}.decisions
  UNION SELECT chain_id FROM ${SCHEMA}.duplicates
  UNION SELECT chain_id FROM ${SCHEMA}.retention_log) c
ON CONFLICT DO NOTHING;
GRANT SELECT, INSERT ON ${SCHEMA}.chains TO ${WRITER_GROUP};
GRANT SELECT ON ${SCHEMA}.chains TO ${MAINTAINER_GROUP};

CREATE OR REPLACE FUNCTION ${SCHEMA}.ensure_partition(p_ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  d      date := (p_ts AT TIME ZONE 'UTC')::date;
  pname  text := format('decisions_y%sm%sd%s', to_char(d, 'YYYY'), to_char(d, 'MM'), to_char(d, 'DD'));
  legacy text := format('decisions_y%sm%s', to_char(d, 'YYYY'), to_char(d, 'MM'));
BEGIN
  IF p_ts > now() + interval '1 year' THEN
    RAISE EXCEPTION 'refusing to create an audit partition more than a year ahead (%)', p_ts;
  END IF;
  IF to_regclass('${SCHEMA}.' || pname) IS NOT NULL THEN
    RETURN pname;
  END IF;
  IF to_regclass('${SCHEMA}.' || legacy) IS NOT NULL THEN
    RETURN legacy;
  END IF;
  -- Serialise creators (writers, maintenance) without blocking inserts. A relation lock,
  -- unlike an advisory lock, also refreshes the catalog view, so the re-check sees a
  -- partition another session just committed.
  LOCK TABLE ${SCHEMA}.decisions IN SHARE UPDATE EXCLUSIVE MODE;
  IF to_regclass('${SCHEMA}.' || pname) IS NOT NULL THEN
    RETURN pname;
  END IF;
  IF to_regclass('${SCHEMA}.' || legacy) IS NOT NULL THEN
    RETURN legacy;
  END IF;
  EXECUTE format('CREATE TABLE ${SCHEMA}.%I PARTITION OF ${SCHEMA}.decisions FOR VALUES FROM (%L) TO (%L)',
    pname, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
  -- TRUNCATE of one partition does not fire the parent's statement trigger.
  EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ${SCHEMA}.%I FOR EACH STATEMENT EXECUTE FUNCTION ${SCHEMA}.refuse_change()', pname);
  RETURN pname;
EXCEPTION WHEN duplicate_table THEN
  RETURN pname;
END
$fn$;

CREATE OR REPLACE FUNCTION ${SCHEMA}.drop_expired_partitions(p_retention_days integer)
RETURNS TABLE (partition_name text, row_count bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  cutoff      timestamptz;
  r           record;
  upper_bound timestamptz;
  n           bigint;
BEGIN
  IF p_retention_days IS NULL OR p_retention_days < 1 THEN
    RAISE EXCEPTION 'retention must be at least one day (got %)', p_retention_days;
  END IF;
  cutoff := now() - make_interval(days => p_retention_days);
  FOR r IN
    SELECT c.relname::text AS relname
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = '${SCHEMA}.decisions'::regclass
       AND c.relname ~ '^decisions_y[0-9]{4}m[0-9]{2}(d[0-9]{2})?$'
     ORDER BY c.relname
  LOOP
    IF length(r.relname) = 18 THEN
      upper_bound := (to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    ELSE
      upper_bound := (to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2) || substr(r.relname, 20, 2), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
    END IF;
    CONTINUE WHEN upper_bound > cutoff;
    EXECUTE format(
      'INSERT INTO ${SCHEMA}.retention_log (partition_name, chain_id, seqs, row_count)
       SELECT %L, chain_id, range_agg(int8range(seq, seq, ''[]'')), count(*) FROM ${SCHEMA}.%I GROUP BY chain_id',
      r.relname, r.relname);
    EXECUTE format(
      'INSERT INTO ${SCHEMA}.retention_anchors (chain_id, seq, hash, partition_name)
       SELECT p.chain_id, p.seq, p.hash, %L FROM ${SCHEMA}.%I p
        WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.%I q WHERE q.chain_id = p.chain_id AND q.seq = p.seq + 1)
       ON CONFLICT DO NOTHING',
      r.relname, r.relname, r.relname);
    EXECUTE format('SELECT count(*) FROM ${SCHEMA}.%I', r.relname) INTO n;
    EXECUTE format('DROP TABLE ${SCHEMA}.%I', r.relname);
    partition_name := r.relname;
    row_count := n;
    RETURN NEXT;
  END LOOP;
END
$fn$;
`;

// GET /v1/audit filters that had no index, for values most records do not carry: an incident
// (operator requests only) and the rarer reasons (condition_failed:*, denied_by_rule, ...).
// Without them such a filter read the whole retained trail newest-first. Both are partial, so
// a decision allowed by a rule or denied by default (nearly every row) costs them nothing.
// query.ts states the reason index's predicate in the query text when the filter implies it.
const V4_RARE_FILTER_INDEXES = `
CREATE INDEX decisions_incident_idx ON ${SCHEMA}.decisions (operator_incident COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE operator_incident IS NOT NULL;
CREATE INDEX decisions_reason_idx ON ${SCHEMA}.decisions (reason COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE reason NOT IN ('allowed_by_rule', 'default_deny');
`;

// GET /v1/audit with `decision=DENY` beside a `policy` filter: the policy index holds every
// decision of the rule, and a namespace's rules allow far more than they deny, so the page was
// the denies among thousands of the rule's rows read newest first. Denies that name a rule are a
// small share of a default-deny mesh's rows after rollout, so the index costs the ingest path
// little (docs/audit.md "Queries over a large trail" has the measured figure). query.ts writes
// the decision as a literal so that a generic plan can prove the predicate.
const V5_DENY_POLICY_INDEX = `
CREATE INDEX decisions_deny_policy_idx ON ${SCHEMA}.decisions (policy_matched COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE decision = 'DENY' AND policy_matched IS NOT NULL;
`;

/** A service record stored this long after its timestamp is late: it marks its hour for a new roll-up. */
export const LATE_AFTER = "15 minutes";

// GET /v1/graph over long windows: hourly edge counts (graph_hours, edges interned in
// graph_edges), rolled up by the maintenance role (roll_up_graph), so a window reads the rolled-up
// hours it covers whole and the trail's rows only for the rest (the hours it cuts, hours not yet
// rolled up, hours a late record arrived in). A record is late when stored more than LATE_AFTER
// after its timestamp (a spool replay, a sidecar's old batch, POST /v1/audit/ingest of old
// records): the row trigger marks its hour in graph_late_hours (SECURITY DEFINER: the engine
// role gets no right on the roll-up tables beyond SELECT), and the hour is read from the trail
// until the roll-up redoes it. A record on time is seen by the roll-up of its hour: that runs
// only for hours ended LATE_AFTER before it started, after waiting for every transaction that was
// open then. Retention deletes the roll-up rows of the days it drops (drop_expired_partitions).
const V6_GRAPH_ROLLUP = `
CREATE TABLE ${SCHEMA}.graph_edges (
  edge_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source      text    NOT NULL,
  destination text,
  port        integer
);
-- Null-safe: only the roll-up adds edges, under its lock, and this keeps that true.
CREATE UNIQUE INDEX graph_edges_key ON ${SCHEMA}.graph_edges (source, (coalesce(destination, '')), (destination IS NULL), (coalesce(port, 0)));

CREATE TABLE ${SCHEMA}.graph_hours (
  hour          timestamptz NOT NULL,
  edge_id       integer     NOT NULL REFERENCES ${SCHEMA}.graph_edges,
  allow         integer     NOT NULL CHECK (allow >= 0),
  deny          integer     NOT NULL CHECK (deny >= 0),
  observed_deny integer     NOT NULL CHECK (observed_deny >= 0),
  first_seen    timestamptz NOT NULL,
  last_seen     timestamptz NOT NULL,
  PRIMARY KEY (hour, edge_id)
);
CREATE INDEX graph_hours_edge_idx ON ${SCHEMA}.graph_hours (edge_id);
-- Hours rolled up (with or without service records).
CREATE TABLE ${SCHEMA}.graph_rolled_hours (hour timestamptz PRIMARY KEY);
-- Hours a late record arrived in, one row per late record, until the roll-up redoes the hour.
CREATE TABLE ${SCHEMA}.graph_late_hours (hour timestamptz NOT NULL);
CREATE INDEX graph_late_hours_hour_idx ON ${SCHEMA}.graph_late_hours (hour);

CREATE FUNCTION ${SCHEMA}.mark_late_hour() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  INSERT INTO ${SCHEMA}.graph_late_hours (hour) VALUES (date_trunc('hour', NEW.ts, 'UTC'));
  RETURN NULL;
END
$fn$;
-- Cloned onto every partition, present and future. The WHEN costs a row on time a clock read.
CREATE TRIGGER decisions_late_hour AFTER INSERT ON ${SCHEMA}.decisions FOR EACH ROW
  WHEN (NEW.source_spiffe_id IS NOT NULL AND NEW.ts < clock_timestamp() - interval '${LATE_AFTER}')
  EXECUTE FUNCTION ${SCHEMA}.mark_late_hour();

-- Rolls up at most p_max_hours hours (the oldest first) that ended LATE_AFTER before it started
-- and are not rolled up or were marked late; returns how many. One roll-up at a time (the lock,
-- which retention takes too). It must see every record stored on time for those hours: it waits
-- for the transactions open when it started (timeout: it rolls up nothing, the next run retries),
-- then reads the trail, the marks and the roll-up in one statement (one snapshot), so a mark it
-- clears is one whose record it counted, and a record committed after it stays marked.
CREATE FUNCTION ${SCHEMA}.roll_up_graph(p_max_hours integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  started timestamptz;
  horizon xid8;
  upto    timestamptz;
  oldest  timestamptz;
  hr      timestamptz;
  n       integer;
BEGIN
  IF p_max_hours IS NULL OR p_max_hours < 1 OR p_max_hours > 10000 THEN
    RAISE EXCEPTION 'roll_up_graph: p_max_hours must be 1-10000 (got %)', p_max_hours;
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'roll_up_graph must run in READ COMMITTED (it waits for transactions, then reads what they stored)';
  END IF;
  LOCK TABLE ${SCHEMA}.graph_rolled_hours IN EXCLUSIVE MODE;
  started := clock_timestamp();
  -- This transaction's own id, taken now: every transaction that stored a record before
  -- \`started\` has a smaller one. A snapshot's xmin counts this transaction's id too, so it
  -- reaches the horizon once all of those have ended. (A snapshot's xmax would not do: it leaves
  -- out the newest open transactions.)
  horizon := pg_current_xact_id();
  WHILE pg_snapshot_xmin(pg_current_snapshot()) < horizon LOOP
    IF clock_timestamp() > started + interval '10 seconds' THEN
      RAISE NOTICE 'roll_up_graph: transactions open for more than 10 s; nothing rolled up';
      RETURN 0;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  upto := date_trunc('hour', started - interval '${LATE_AFTER}', 'UTC');
  SELECT date_trunc('hour', min(ts), 'UTC') INTO oldest FROM ${SCHEMA}.decisions;
  IF oldest IS NULL THEN
    RETURN 0;
  END IF;
  CREATE TEMP TABLE graph_todo (hour timestamptz PRIMARY KEY) ON COMMIT DROP;
  INSERT INTO graph_todo
  SELECT hour FROM (
    SELECT h AS hour FROM generate_series(oldest, upto - interval '1 hour', interval '1 hour') AS h
     WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.graph_rolled_hours r WHERE r.hour = h)
    UNION
    SELECT l.hour FROM ${SCHEMA}.graph_late_hours l WHERE l.hour < upto) AS t
  ORDER BY hour LIMIT p_max_hours;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    DROP TABLE graph_todo;
    RETURN 0;
  END IF;
  CREATE TEMP TABLE graph_stage (hour timestamptz, source text, destination text, port integer,
    allow bigint, deny bigint, observed_deny bigint, first_seen timestamptz, last_seen timestamptz) ON COMMIT DROP;
  -- An hour at a time, both its bounds literals (the planner prunes to its partition; a bound
  -- computed in the statement, timestamptz + interval, is not immutable and would leave every
  -- later partition to plan), its marks cleared in the statement that reads its records.
  FOR hr IN SELECT t.hour FROM graph_todo t ORDER BY t.hour LOOP
    EXECUTE format(
      'WITH cleared AS (DELETE FROM ${SCHEMA}.graph_late_hours WHERE hour = %1$L::timestamptz)
       INSERT INTO graph_stage
       SELECT %1$L::timestamptz, d.source_spiffe_id, d.dest_spiffe_id, d.dest_port,
              count(*) FILTER (WHERE d.decision = ''ALLOW''),
              count(*) FILTER (WHERE d.decision = ''DENY''),
              count(*) FILTER (WHERE d.decision = ''DENY'' AND NOT d.enforced),
              min(d.ts), max(d.ts)
         FROM ${SCHEMA}.decisions d
        WHERE d.ts >= %1$L::timestamptz AND d.ts < %2$L::timestamptz AND d.source_spiffe_id IS NOT NULL
        GROUP BY 2, 3, 4',
      hr, hr + interval '1 hour');
  END LOOP;
  INSERT INTO ${SCHEMA}.graph_rolled_hours (hour) SELECT t.hour FROM graph_todo t ON CONFLICT DO NOTHING;
  DELETE FROM ${SCHEMA}.graph_hours g USING graph_todo t WHERE g.hour = t.hour;
  INSERT INTO ${SCHEMA}.graph_edges (source, destination, port)
  SELECT DISTINCT s.source, s.destination, s.port FROM graph_stage s
   WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.graph_edges e
                      WHERE e.source = s.source AND coalesce(e.destination, '') = coalesce(s.destination, '')
                        AND (e.destination IS NULL) = (s.destination IS NULL) AND coalesce(e.port, 0) = coalesce(s.port, 0));
  INSERT INTO ${SCHEMA}.graph_hours (hour, edge_id, allow, deny, observed_deny, first_seen, last_seen)
  SELECT s.hour, e.edge_id, s.allow, s.deny, s.observed_deny, s.first_seen, s.last_seen
    FROM graph_stage s
    JOIN ${SCHEMA}.graph_edges e
      ON e.source = s.source AND coalesce(e.destination, '') = coalesce(s.destination, '')
     AND (e.destination IS NULL) = (s.destination IS NULL) AND coalesce(e.port, 0) = coalesce(s.port, 0);
  DROP TABLE graph_stage;
  DROP TABLE graph_todo;
  RETURN n;
END
$fn$;

-- Retention as in migration 3, and the roll-up of the days it drops with them.
CREATE OR REPLACE FUNCTION ${SCHEMA}.drop_expired_partitions(p_retention_days integer)
RETURNS TABLE (partition_name text, row_count bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  cutoff      timestamptz;
  r           record;
  lower_bound timestamptz;
  upper_bound timestamptz;
  n           bigint;
  dropped     boolean := false;
  kept_from   timestamptz;
BEGIN
  IF p_retention_days IS NULL OR p_retention_days < 1 THEN
    RAISE EXCEPTION 'retention must be at least one day (got %)', p_retention_days;
  END IF;
  cutoff := now() - make_interval(days => p_retention_days);
  -- Not while a roll-up reads the days dropped here.
  LOCK TABLE ${SCHEMA}.graph_rolled_hours IN EXCLUSIVE MODE;
  FOR r IN
    SELECT c.relname::text AS relname
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = '${SCHEMA}.decisions'::regclass
       AND c.relname ~ '^decisions_y[0-9]{4}m[0-9]{2}(d[0-9]{2})?$'
     ORDER BY c.relname
  LOOP
    IF length(r.relname) = 18 THEN
      lower_bound := to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2), 'YYYYMM')::timestamp AT TIME ZONE 'UTC';
      upper_bound := (to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    ELSE
      lower_bound := to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2) || substr(r.relname, 20, 2), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
      upper_bound := (to_date(substr(r.relname, 12, 4) || substr(r.relname, 17, 2) || substr(r.relname, 20, 2), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
    END IF;
    IF upper_bound > cutoff THEN
      kept_from := least(kept_from, lower_bound);
      CONTINUE;
    END IF;
    EXECUTE format(
      'INSERT INTO ${SCHEMA}.retention_log (partition_name, chain_id, seqs, row_count)
       SELECT %L, chain_id, range_agg(int8range(seq, seq, ''[]'')), count(*) FROM ${SCHEMA}.%I GROUP BY chain_id',
      r.relname, r.relname);
    EXECUTE format(
      'INSERT INTO ${SCHEMA}.retention_anchors (chain_id, seq, hash, partition_name)
       SELECT p.chain_id, p.seq, p.hash, %L FROM ${SCHEMA}.%I p
        WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.%I q WHERE q.chain_id = p.chain_id AND q.seq = p.seq + 1)
       ON CONFLICT DO NOTHING',
      r.relname, r.relname, r.relname);
    EXECUTE format('SELECT count(*) FROM ${SCHEMA}.%I', r.relname) INTO n;
    EXECUTE format('DROP TABLE ${SCHEMA}.%I', r.relname);
    dropped := true;
    partition_name := r.relname;
    row_count := n;
    RETURN NEXT;
  END LOOP;
  -- The roll-up of every hour before the oldest partition kept (the dropped days, and days
  -- without a partition between them), then the edges no hour left uses.
  IF dropped THEN
    DELETE FROM ${SCHEMA}.graph_hours WHERE hour < coalesce(kept_from, cutoff);
    DELETE FROM ${SCHEMA}.graph_rolled_hours WHERE hour < coalesce(kept_from, cutoff);
    DELETE FROM ${SCHEMA}.graph_late_hours WHERE hour < coalesce(kept_from, cutoff);
    DELETE FROM ${SCHEMA}.graph_edges e WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.graph_hours g WHERE g.edge_id = e.edge_id);
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION ${SCHEMA}.mark_late_hour() FROM PUBLIC;
REVOKE ALL ON FUNCTION ${SCHEMA}.roll_up_graph(integer) FROM PUBLIC;
GRANT SELECT ON ${SCHEMA}.graph_edges, ${SCHEMA}.graph_hours, ${SCHEMA}.graph_rolled_hours, ${SCHEMA}.graph_late_hours
  TO ${WRITER_GROUP}, ${MAINTAINER_GROUP};
GRANT EXECUTE ON FUNCTION ${SCHEMA}.roll_up_graph(integer) TO ${MAINTAINER_GROUP};
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "audit trail: partitioned table, roles, retention", sql: V1_SCHEMA },
  { version: 2, name: "filter indexes in byte order (COLLATE \"C\"), without deduplication", sql: V2_C_COLLATION_INDEXES },
  { version: 3, name: "declared chains; partitions by day", sql: V3_CHAINS_AND_DAY_PARTITIONS },
  { version: 4, name: "partial indexes for the incident and rare-reason filters", sql: V4_RARE_FILTER_INDEXES },
  { version: 5, name: "partial index for policy filters on denies", sql: V5_DENY_POLICY_INDEX },
  { version: 6, name: "hourly roll-up of the service graph", sql: V6_GRAPH_ROLLUP },
];

/** The audit trail's track of versioned migrations (host/common/migrations.ts runs it). */
export const AUDIT_TRACK: MigrationTrack = { schema: SCHEMA, label: "audit", migrations: MIGRATIONS };

export const LATEST_VERSION = latestVersion(AUDIT_TRACK);

/** Applies pending audit migrations; a no-op when the schema is current. `sql` must connect as the owner role. */
export function migrate(sql: Sql): Promise<MigrationResult> {
  return runMigrations(sql, AUDIT_TRACK);
}

/** For a writer that may not migrate (external DSN without ZT_AUDIT_MIGRATE_DSN): the schema must already be current. */
export function checkSchemaVersion(sql: Sql): Promise<void> {
  return requireCurrentSchema(sql, AUDIT_TRACK, "run once with ZT_AUDIT_MIGRATE_DSN set to the owner role");
}
