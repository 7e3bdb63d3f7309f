// Versioned schema migrations, one track per schema (the audit trail, shared state, ...). A
// track runs at start-up as its owner role inside one transaction under an advisory lock, so
// replicas starting together apply each version once. An applied migration whose text changed
// is an error, not a silent re-run.
import { createHash } from "node:crypto";
import type { Sql } from "postgres";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export interface MigrationTrack {
  /** The schema the track creates and records its versions in (`<schema>.schema_migrations`). */
  readonly schema: string;
  /** Names the track in errors ("audit migration 2 ..."). */
  readonly label: string;
  readonly migrations: readonly Migration[];
}

export interface MigrationResult {
  applied: number[];
  version: number;
}

export function latestVersion(track: MigrationTrack): number {
  return track.migrations[track.migrations.length - 1]?.version ?? 0;
}

function checksum(m: Migration): string {
  return createHash("sha256").update(m.sql).digest("hex");
}

/** Applies a track's pending migrations; a no-op when its schema is current. */
export async function runMigrations(sql: Sql, track: MigrationTrack): Promise<MigrationResult> {
  const { schema, label } = track;
  const applied: number[] = [];
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${schema + ".migrate"}))`;
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const rows = await tx.unsafe<{ version: number; checksum: string }[]>(`SELECT version, checksum FROM ${schema}.schema_migrations`);
    const done = new Map(rows.map((r) => [r.version, r.checksum]));
    for (const m of track.migrations) {
      const sum = checksum(m);
      const have = done.get(m.version);
      if (have !== undefined) {
        if (have !== sum) throw new Error(`${label} migration ${m.version} (${m.name}) was applied with different text; refusing to continue`);
        continue;
      }
      await tx.unsafe(m.sql);
      await tx.unsafe(`INSERT INTO ${schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [m.version, m.name, sum]);
      applied.push(m.version);
    }
  });
  return { applied, version: latestVersion(track) };
}

/** For a role that may not migrate: the track's schema must already be current; `fix` says how. */
export async function requireCurrentSchema(sql: Sql, track: MigrationTrack, fix: string): Promise<void> {
  let version = 0;
  try {
    const rows = await sql.unsafe<{ v: number | null }[]>(`SELECT max(version) AS v FROM ${track.schema}.schema_migrations`);
    version = rows[0]?.v ?? 0;
  } catch (e) {
    throw new Error(`${track.label} schema missing or unreadable (${(e as Error).message}); ${fix}`);
  }
  const latest = latestVersion(track);
  if (version < latest) throw new Error(`${track.label} schema is at version ${version}, this build needs ${latest}; ${fix}`);
}
