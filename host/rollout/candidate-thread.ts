// The candidate thread: parses, compiles and diffs candidate policy sets for the rollout tools
// and the console, one job at a time in arrival order (common/job-thread.ts; candidates.ts is
// the other side). It keeps the active set it was last given, so the serving thread sends a
// base only when the active version changed (or this thread is new).
import { serveJobs } from "../common/job-thread.js";
import { PolicyRuntime } from "../engine/runtime.js";
import { SetAssembler } from "../engine/set-transfer.js";
import { type CandidateBase, runCandidateJob } from "./candidate-job.js";
import type { BaseData, CandidateThreadInput, CandidateThreadResult } from "./candidates.js";

let held: { version: string; base: CandidateBase } | null = null;

function resolve(data: BaseData): CandidateBase {
  return { set: new SetAssembler(data.pieces).set, runtime: PolicyRuntime.fromModule(data.module, data.wasm, data.version, data.manifest) };
}

serveJobs<CandidateThreadInput, CandidateThreadResult>(
  async ({ job, base }) => {
    if (base.data !== null) held = { version: base.data.version, base: resolve(base.data) };
    if (held === null || held.version !== base.version) return { result: { ok: false, reason: "base_missing" } };
    return { result: await runCandidateJob(job, held.base) };
  },
  (e) => ({ ok: false, reason: "invalid", errors: [{ file: "(compiler)", line: 1, col: 1, message: `the candidate could not be built: ${e.message}` }] }),
);
