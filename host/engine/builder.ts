// Where builds run. The engine's builder is a worker thread (build-thread.ts): the serving
// thread hands it the texts and gets back a checked module, so parsing and compiling 50,000
// rules never hold the event loop that answers /v1/evaluate and /healthz. Builds are run one
// at a time in the order asked (the policy store queues them; so does the thread).
//
// Fail closed: if the thread dies (a crash, or its memory limit on a huge policy set), every
// build it had not answered is reported as failed ("unavailable": the caller keeps the old
// module serving) and the next build starts a new thread (with an empty parse cache); the
// thread's life is common/job-thread.ts.
//
// The inline builder runs the same job on the calling thread: what the engine did before
// issue 22, kept for the bench's before-figure (ZT_BUILD_INLINE=1).
import { JobThread } from "../common/job-thread.js";
import type { Logger } from "../common/logger.js";
import { type BuildInput, ParseCache } from "./build.js";
import { type BuildJobResult, runBuildJob } from "./build-job.js";

export interface ModuleBuilder {
  build(input: BuildInput): Promise<BuildJobResult>;
  close(): Promise<void>;
}

export interface BuilderOptions {
  /** Run builds on the calling thread (the bench's before-figure only). */
  inline: boolean;
  /** The build thread's heap limit (V8 old generation), MB. */
  memoryMb: number;
  /** How long a build may run before its thread is stopped and the build fails, ms. */
  timeoutMs: number;
  log: Logger;
}

export function createBuilder(opts: BuilderOptions): ModuleBuilder {
  return opts.inline ? new InlineBuilder() : new ThreadBuilder(opts);
}

class InlineBuilder implements ModuleBuilder {
  private readonly cache = new ParseCache();

  build(input: BuildInput): Promise<BuildJobResult> {
    return runBuildJob(input, this.cache);
  }

  async close(): Promise<void> {}
}

export class ThreadBuilder implements ModuleBuilder {
  private readonly thread: JobThread<BuildInput, BuildJobResult>;

  constructor(opts: Omit<BuilderOptions, "inline">) {
    this.thread = new JobThread<BuildInput, BuildJobResult>({
      callerUrl: import.meta.url,
      name: "build-thread",
      memoryMb: opts.memoryMb,
      timeoutMs: opts.timeoutMs,
      log: opts.log,
      what: "policy build",
      unavailable: (message) => ({ ok: false, reason: "unavailable", message }),
    });
  }

  /** Threads started so far (the first build starts one; each death, the next build another). */
  get starts(): number {
    return this.thread.starts;
  }

  build(input: BuildInput): Promise<BuildJobResult> {
    return this.thread.run(input);
  }

  close(): Promise<void> {
    return this.thread.close();
  }
}
