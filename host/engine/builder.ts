// Where builds run. The engine's builder is a worker thread (build-thread.ts): the serving
// thread hands it the texts and gets back a checked module, so parsing and compiling 50,000
// rules never hold the event loop that answers /v1/evaluate and /healthz. Builds are run one
// at a time in the order asked (the policy store queues them; so does the thread).
//
// Fail closed: if the thread dies (a crash, or its memory limit on a huge policy set), every
// build it had not answered is reported as failed ("unavailable": the caller keeps the old
// module serving) and the next build starts a new thread (with an empty parse cache).
//
// The inline builder runs the same job on the calling thread: what the engine did before
// issue 22, kept for the bench's before-figure (ZT_BUILD_INLINE=1).
import type { Worker } from "node:worker_threads";
import type { Logger } from "../common/logger.js";
import { spawnThread } from "../common/spawn-thread.js";
import { type BuildInput, ParseCache } from "./build.js";
import { type BuildJobResult, runBuildJob } from "./build-job.js";

export interface BuildRequest {
  id: number;
  input: BuildInput;
}

export interface BuildReply {
  id: number;
  result: BuildJobResult;
}

export interface ModuleBuilder {
  build(input: BuildInput): Promise<BuildJobResult>;
  close(): Promise<void>;
}

export interface BuilderOptions {
  /** Run builds on the calling thread (the bench's before-figure only). */
  inline: boolean;
  /** The build thread's heap limit (V8 old generation), MB. */
  memoryMb: number;
  log: Logger;
}

export function createBuilder(opts: BuilderOptions): ModuleBuilder {
  return opts.inline ? new InlineBuilder() : new ThreadBuilder(opts.memoryMb, opts.log);
}

class InlineBuilder implements ModuleBuilder {
  private readonly cache = new ParseCache();

  build(input: BuildInput): Promise<BuildJobResult> {
    return runBuildJob(input, this.cache);
  }

  async close(): Promise<void> {}
}

export class ThreadBuilder implements ModuleBuilder {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, (r: BuildJobResult) => void>();
  private nextId = 1;
  private closed = false;
  /** Threads started so far (the first build starts one; each death, the next build another). */
  starts = 0;

  constructor(
    private readonly memoryMb: number,
    private readonly log: Logger,
  ) {}

  build(input: BuildInput): Promise<BuildJobResult> {
    if (this.closed) return Promise.resolve({ ok: false, reason: "unavailable", message: "the engine is stopping" });
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      // A pending build keeps the process alive; an idle thread does not.
      worker.ref();
      worker.postMessage({ id, input } satisfies BuildRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private start(): Worker {
    this.starts++;
    const worker = spawnThread(import.meta.url, "build-thread", { resourceLimits: { maxOldGenerationSizeMb: this.memoryMb } });
    this.worker = worker;
    let failure: Error | null = null;
    worker.on("message", (reply: BuildReply) => {
      const resolve = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      resolve?.(reply.result);
    });
    worker.on("error", (e) => {
      failure = e;
    });
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = null;
      const why = failure ? `${(failure as NodeJS.ErrnoException).code ?? failure.name}: ${failure.message}` : `exit code ${code}`;
      if (this.pending.size > 0 || !this.closed) this.log.warn("the policy build thread stopped; its builds failed and the next build starts a new one", { reason: why, failed_builds: this.pending.size });
      for (const resolve of this.pending.values()) resolve({ ok: false, reason: "unavailable", message: `the build thread stopped (${why})` });
      this.pending.clear();
    });
    worker.unref();
    return worker;
  }
}
