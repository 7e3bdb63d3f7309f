// The build thread: one long-lived worker that keeps the ParseCache, so a write beside large
// policies re-parses only what changed. It runs one build at a time, in arrival order
// (common/job-thread.ts; builder.ts is the other side).
import { serveJobs } from "../common/job-thread.js";
import { type BuildInput, ParseCache } from "./build.js";
import { type BuildJobResult, runBuildJob } from "./build-job.js";
import { piecesTransfer } from "./set-transfer.js";

const cache = new ParseCache();

serveJobs<BuildInput, BuildJobResult>(
  async (input) => {
    const result = await runBuildJob(input, cache);
    // The module's bytes and the serialized set move; the compiled module is shared.
    return { result, transfer: result.ok ? [result.build.wasm.buffer, ...piecesTransfer(result.build.set)] : [] };
  },
  (e) => ({ ok: false, reason: "invalid", diagnostics: [{ file: "(build)", line: 1, col: 1, message: `the build failed: ${e.message}` }] }),
);
