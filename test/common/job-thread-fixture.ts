// A worker thread for test/common/job-thread.test.ts: doubles a number, or never answers
// (spins), or exits the thread, as the job says.
import { serveJobs } from "../../host/common/job-thread.js";

export type FixtureJob = { kind: "double"; n: number } | { kind: "spin" } | { kind: "exit" } | { kind: "throw" };
export type FixtureResult = { ok: true; value: number } | { ok: false; message: string };

serveJobs<FixtureJob, FixtureResult>(
  async (job) => {
    if (job.kind === "spin") for (;;);
    if (job.kind === "exit") process.exit(3);
    if (job.kind === "throw") throw new Error("the job threw");
    return { result: { ok: true, value: job.n * 2 } };
  },
  (e) => ({ ok: false, message: `failed: ${e.message}` }),
);
