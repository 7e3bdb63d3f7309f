// vitest's global setup (vitest.config.ts): runs once before any test file, for `npm test` and
// for `npx vitest run <file>` alike. It installs the system packages the tests need (or says
// what is missing and how to get it), then checks that the embedded PostgreSQL can run here:
// if it cannot, the reason is printed at the top, and every test that needs the server fails
// within seconds with that same one-line reason.
import { prepareEmbeddedPostgres } from "../../host/audit/embedded.js";
import { ensureSystemPackages } from "./system-packages.js";

export default async function setup(): Promise<void> {
  ensureSystemPackages();
  try {
    // As root this also creates the server's account and stages its binaries once, before the
    // test files race to do it in parallel.
    await prepareEmbeddedPostgres();
  } catch (e) {
    process.stderr.write(`\nnpm test setup: ${(e as Error).message}\nnpm test setup: the tests that need the embedded PostgreSQL will fail with this reason.\n\n`);
  }
}
