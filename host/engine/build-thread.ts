// The build thread: one long-lived worker that keeps the ParseCache, so a write beside large
// policies re-parses only what changed. It runs one build at a time, in arrival order, and
// answers each with its id (builder.ts is the other side).
import { parentPort } from "node:worker_threads";
import { ParseCache } from "./build.js";
import { type BuildJobResult, runBuildJob } from "./build-job.js";
import type { BuildReply, BuildRequest } from "./builder.js";
import { piecesTransfer } from "./set-transfer.js";

if (!parentPort) throw new Error("build-thread.ts runs as a worker thread");
const port = parentPort;
const cache = new ParseCache();
let queue: Promise<void> = Promise.resolve();

async function answer(req: BuildRequest): Promise<void> {
  let result: BuildJobResult;
  try {
    result = await runBuildJob(req.input, cache);
  } catch (e) {
    result = { ok: false, reason: "invalid", diagnostics: [{ file: "(build)", line: 1, col: 1, message: `the build failed: ${(e as Error).message}` }] };
  }
  const reply: BuildReply = { id: req.id, result };
  // The module's bytes and the serialized set move; the compiled module is shared.
  port.postMessage(reply, result.ok ? [result.build.wasm.buffer, ...piecesTransfer(result.build.set)] : []);
}

port.on("message", (req: BuildRequest) => {
  queue = queue.then(() => answer(req));
});
