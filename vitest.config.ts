import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // System packages and the embedded PostgreSQL's binaries, once per run (test/setup/); then one
    // embedded PostgreSQL for the run: engines with a shared state get a database each on it.
    globalSetup: ["test/setup/global-setup.ts", "test/support/global-postgres.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
