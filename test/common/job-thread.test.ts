// JobThread (host/common/job-thread.ts), the life of the policy build and candidate threads:
// jobs are answered in the order asked; a job that never ends (the thread stays silent for
// timeoutMs) or a thread that exits fails every job it had, closed, with the reason; the next
// job starts a new thread; a handler that throws answers through `failed`.
import { afterEach, describe, expect, it } from "vitest";
import { JobThread } from "../../host/common/job-thread.js";
import { silentLogger } from "../../host/common/logger.js";
import type { FixtureJob, FixtureResult } from "./job-thread-fixture.js";

const threads: Array<JobThread<FixtureJob, FixtureResult>> = [];
afterEach(async () => {
  for (const t of threads.splice(0)) await t.close();
});

function thread(timeoutMs = 60_000): JobThread<FixtureJob, FixtureResult> {
  const t = new JobThread<FixtureJob, FixtureResult>({
    callerUrl: import.meta.url,
    name: "job-thread-fixture",
    memoryMb: 64,
    timeoutMs,
    log: silentLogger,
    what: "fixture",
    unavailable: (message) => ({ ok: false, message }),
  });
  threads.push(t);
  return t;
}

describe("JobThread", () => {
  it("answers each job, in the order asked, on one thread", async () => {
    const t = thread();
    const answers = await Promise.all([1, 2, 3, 4].map((n) => t.run({ kind: "double", n })));
    expect(answers).toEqual([2, 4, 6, 8].map((value) => ({ ok: true, value })));
    expect(t.starts).toBe(1);
  });

  it("a job that never ends: the thread is stopped after timeoutMs of silence, its jobs fail closed, the next job gets a new thread", async () => {
    const t = thread(2_000);
    expect(await t.run({ kind: "double", n: 1 })).toEqual({ ok: true, value: 2 });
    const [stuck, queued] = await Promise.all([t.run({ kind: "spin" }), t.run({ kind: "double", n: 5 })]);
    expect(stuck).toEqual({ ok: false, message: "the fixture thread stopped (it did not answer within 2000 ms)" });
    expect(queued).toEqual(stuck);
    expect(await t.run({ kind: "double", n: 7 })).toEqual({ ok: true, value: 14 });
    expect(t.starts).toBe(2);
  });

  it("a thread that exits fails the jobs it had; a handler that throws answers through failed()", async () => {
    const t = thread();
    expect(await t.run({ kind: "throw" })).toEqual({ ok: false, message: "failed: the job threw" });
    expect(await t.run({ kind: "exit" })).toEqual({ ok: false, message: "the fixture thread stopped (exit code 3)" });
    expect(await t.run({ kind: "double", n: 2 })).toEqual({ ok: true, value: 4 });
    expect(t.starts).toBe(2);
  });

  it("after close, jobs are answered unavailable without a thread", async () => {
    const t = thread();
    await t.close();
    expect(await t.run({ kind: "double", n: 1 })).toEqual({ ok: false, message: "the engine is stopping" });
    expect(t.starts).toBe(0);
  });
});
