// One long-lived worker thread for CPU work the serving thread must never do itself (policy
// builds, candidate compiles): it runs jobs one at a time in the order asked and answers each
// by its id. JobThread is the serving thread's side, serveJobs the thread's.
//
// Fail closed: if the thread dies (a crash, or its heap limit on a huge policy set), or stays
// silent for `timeoutMs` while it has jobs (a job that never ends would otherwise hold every
// job queued behind it, for good), every job it had not answered gets the caller's
// "unavailable" result, and the next job starts a new thread. A pending job keeps the process
// alive; an idle thread does not.
import { parentPort, type Transferable, type Worker } from "node:worker_threads";
import type { Logger } from "./logger.js";
import { spawnThread } from "./spawn-thread.js";

interface JobRequest<I> {
  id: number;
  input: I;
}

interface JobReply<O> {
  id: number;
  result: O;
}

/** The thread's first message: it has loaded its code and takes jobs (the silence timer starts then). */
interface ThreadReady {
  ready: true;
}

export interface JobThreadOptions<O> {
  /** The caller's import.meta.url and the thread module's base name (spawn-thread.ts). */
  callerUrl: string;
  name: string;
  /** The thread's heap limit (V8 old generation), MB. */
  memoryMb: number;
  /** How long the thread may go without answering while it has jobs before it is stopped, ms. */
  timeoutMs: number;
  log: Logger;
  /** What the work is, for the log line when the thread stops ("policy build"). */
  what: string;
  /** The answer to a job the thread did not run to its end. */
  unavailable(message: string): O;
}

export class JobThread<I, O> {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, (r: O) => void>();
  private nextId = 1;
  private closed = false;
  private silence: NodeJS.Timeout | null = null;
  /** The current thread has loaded its code (starting a thread is not a job's time). */
  private ready = false;
  /** Why the thread was stopped by this side (its exit reason for the jobs it had). */
  private stopping: string | null = null;
  /** Threads started so far (the first job starts one; each death, the next job another). */
  starts = 0;

  constructor(private readonly opts: JobThreadOptions<O>) {}

  run(input: I, transfer: readonly Transferable[] = []): Promise<O> {
    if (this.closed) return Promise.resolve(this.opts.unavailable("the engine is stopping"));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      if (this.pending.size === 1) this.watch(worker);
      worker.ref();
      worker.postMessage({ id, input } satisfies JobRequest<I>, [...transfer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  /** (Re)arms the silence timer for `worker`'s oldest unanswered job. */
  private watch(worker: Worker): void {
    if (this.silence) clearTimeout(this.silence);
    this.silence = null;
    if (this.pending.size === 0 || !this.ready) return;
    this.silence = setTimeout(() => {
      this.silence = null;
      if (this.worker !== worker) return;
      this.stopping = `it did not answer within ${this.opts.timeoutMs} ms`;
      void worker.terminate();
    }, this.opts.timeoutMs);
    this.silence.unref();
  }

  private start(): Worker {
    this.starts++;
    this.stopping = null;
    this.ready = false;
    const worker = spawnThread(this.opts.callerUrl, this.opts.name, { resourceLimits: { maxOldGenerationSizeMb: this.opts.memoryMb } });
    this.worker = worker;
    let failure: Error | null = null;
    worker.on("message", (reply: JobReply<O> | ThreadReady) => {
      if ("ready" in reply) {
        this.ready = true;
        this.watch(worker);
        return;
      }
      const resolve = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      this.watch(worker);
      resolve?.(reply.result);
    });
    worker.on("error", (e) => {
      failure = e;
    });
    worker.on("exit", (code) => {
      if (this.worker === worker) this.worker = null;
      if (this.silence) clearTimeout(this.silence);
      this.silence = null;
      const why = this.stopping ?? (failure ? `${(failure as NodeJS.ErrnoException).code ?? failure.name}: ${failure.message}` : `exit code ${code}`);
      const what = this.opts.what;
      if (this.pending.size > 0 || !this.closed) this.opts.log.warn(`the ${what} thread stopped; its jobs failed and the next one starts a new thread`, { reason: why, failed_jobs: this.pending.size });
      for (const resolve of this.pending.values()) resolve(this.opts.unavailable(`the ${what} thread stopped (${why})`));
      this.pending.clear();
    });
    worker.unref();
    return worker;
  }
}

/** What a job's handler returns: its answer, and the buffers that move with it (not copied). */
export interface JobAnswer<O> {
  result: O;
  transfer?: readonly Transferable[];
}

/**
 * The thread's side: answers each job in arrival order with `handle`; a handler that throws
 * is answered with `failed(error)`.
 */
export function serveJobs<I, O>(handle: (input: I) => Promise<JobAnswer<O>>, failed: (e: Error) => O): void {
  if (!parentPort) throw new Error("serveJobs runs in a worker thread");
  const port = parentPort;
  let queue: Promise<void> = Promise.resolve();
  const answer = async (req: JobRequest<I>): Promise<void> => {
    let a: JobAnswer<O>;
    try {
      a = await handle(req.input);
    } catch (e) {
      a = { result: failed(e as Error) };
    }
    port.postMessage({ id: req.id, result: a.result } satisfies JobReply<O>, [...(a.transfer ?? [])]);
  };
  port.on("message", (req: JobRequest<I>) => {
    queue = queue.then(() => answer(req));
  });
  port.postMessage({ ready: true } satisfies ThreadReady);
}
