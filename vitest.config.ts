import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // One embedded PostgreSQL for the run: engines with a shared state get a database each on it.
    globalSetup: ["test/support/global-postgres.ts"],
  },
});
