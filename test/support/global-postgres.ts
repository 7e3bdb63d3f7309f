// vitest globalSetup: one embedded PostgreSQL for the whole run, for the engines the tests start
// with a shared state (test/support/state-db.ts gives each its own database on it). Started
// once here, in the main vitest process, so that it is stopped once at the end whatever happens
// to the test processes.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../host/audit/embedded.js";
import { bootstrapRoles } from "../../host/audit/roles.js";

export interface SharedPostgresInfo {
  superDsn: string;
  ownerDsn: string;
  engineDsn: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    ztPostgres: SharedPostgresInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), "zt-test-pg-"));
  chmodSync(dir, 0o711);
  const pg = await startEmbeddedPostgres({ dataDir: join(dir, "pg") });
  const dsns = await bootstrapRoles(pg.dsn, dir);
  project.provide("ztPostgres", { superDsn: pg.dsn, ownerDsn: dsns.owner, engineDsn: dsns.engine });
  return async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
