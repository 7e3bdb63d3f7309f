// vitest's global setup (vitest.config.ts): runs once before any test file, for `npm test` and
// for `npx vitest run <file>` alike. It installs the system packages the tests need (or says
// what is missing and how to get it), then checks that the embedded PostgreSQL can run here:
// if it cannot, the reason is printed at the top, and every test that needs the server fails
// within seconds with that same one-line reason. At the end it removes the clusters that tests
// left in the root staging directory after deleting their data directory, and says so.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_EMBEDDED_DIR, prepareEmbeddedPostgres } from "../../host/audit/embedded.js";
import { findRunningPostmaster, stopByPid } from "../../host/audit/embedded-process.js";
import { ensureSystemPackages } from "./system-packages.js";

export default async function setup(): Promise<() => Promise<void>> {
  ensureSystemPackages();
  try {
    // As root this also creates the server's account and stages its binaries once, before the
    // test files race to do it in parallel.
    await prepareEmbeddedPostgres();
  } catch (e) {
    process.stderr.write(`\nnpm test setup: ${(e as Error).message}\nnpm test setup: the tests that need the embedded PostgreSQL will fail with this reason.\n\n`);
  }
  return removeOrphanedClusters;
}

/**
 * As root, a test whose data directory sits under a private (0700) directory gets its cluster in
 * /var/lib/zt-postgres/clusters; deleting the data directory leaves it behind. Those whose data
 * directory (named in `<id>.data-dir`, under the temporary directory) is gone are stopped and
 * removed, and counted aloud so the test that leaked them gets fixed.
 */
async function removeOrphanedClusters(): Promise<void> {
  const clusters = join(DEFAULT_EMBEDDED_DIR, "clusters");
  if (process.getuid?.() !== 0 || !existsSync(clusters)) return;
  const removed: string[] = [];
  for (const f of readdirSync(clusters).filter((n) => n.endsWith(".data-dir"))) {
    const dataDir = readFileSync(join(clusters, f), "utf8").trim();
    // Only test data (under the temporary directory) is ever removed, never a real audit trail.
    if (existsSync(dataDir) || !dataDir.startsWith(tmpdir() + "/")) continue;
    const cluster = join(clusters, f.slice(0, -".data-dir".length));
    const running = findRunningPostmaster(cluster);
    if (running) await stopByPid(running.pid, cluster);
    await rm(cluster, { recursive: true, force: true });
    await rm(join(clusters, f), { force: true });
    removed.push(`${cluster} (for ${dataDir})`);
  }
  if (removed.length > 0) process.stderr.write(`npm test teardown: removed ${removed.length} embedded cluster(s) whose data directory a test deleted without stopping them:\n  ${removed.join("\n  ")}\n`);
}
