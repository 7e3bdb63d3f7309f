// Where candidate policy sets are built: a worker thread of their own (candidate-thread.ts), so
// parsing, compiling and diffing a candidate of 50,000 rules never holds the event loop that
// answers /v1/evaluate and /healthz; the same job runs on the calling thread when `inline` is
// set (the reference, and the before-figure). Jobs run one at a time in the order asked. The
// thread is started by the first job; if it dies, its jobs answer "unavailable" (503) and the
// next job starts a new one.
import type { Manifest } from "../../compiler/compile.js";
import { JobThread } from "../common/job-thread.js";
import type { Logger } from "../common/logger.js";
import type { ActivePolicies } from "../engine/policy-store.js";
import { PolicyRuntime } from "../engine/runtime.js";
import type { SetPieces } from "../engine/set-transfer.js";
import { type CandidateJob, type CandidateJobResult, runCandidateJob } from "./candidate-job.js";

/** The active policies as the thread needs them: the serialized set and the compiled module. */
export interface BaseData {
  version: string;
  pieces: SetPieces;
  module: WebAssembly.Module;
  wasm: Uint8Array;
  manifest: Manifest;
}

export interface CandidateThreadInput {
  job: CandidateJob;
  /** The active version the job is read against, and its data when the thread may not hold it yet. */
  base: { version: string; data: BaseData | null };
}

export type CandidateThreadResult = CandidateJobResult | { ok: false; reason: "base_missing" };

/** A job's answer when it did not succeed. */
export type CandidateFailure = Exclude<CandidateJobResult, { ok: true }>;
/** What a job of kind K answers. */
export type CandidateAnswer<K extends CandidateJob["kind"]> = Extract<CandidateJobResult, { ok: true; kind: K }> | CandidateFailure;

export interface CandidatesOptions {
  /** Run jobs on the calling thread (the reference and the bench's before-figure only). */
  inline?: boolean;
  /** The thread's heap limit (V8 old generation), MB. */
  memoryMb?: number;
  /** How long a job may run before the thread is stopped and the job fails, ms. */
  timeoutMs?: number;
  log: Logger;
}

/** The default heap limit: a 50,000-rule candidate next to a 50,000-rule active set. */
export const DEFAULT_CANDIDATE_MEMORY_MB = 2_048;
/** As the policy builds' (DEFAULT_BUILD_TIMEOUT_MS): only a stuck job reaches it. */
export const DEFAULT_CANDIDATE_TIMEOUT_MS = 300_000;

export class Candidates {
  private readonly thread: JobThread<CandidateThreadInput, CandidateThreadResult> | null;
  /** The active version the thread was last sent (it keeps one). */
  private sent: string | null = null;

  constructor(opts: CandidatesOptions) {
    this.thread = opts.inline
      ? null
      : new JobThread<CandidateThreadInput, CandidateThreadResult>({
          callerUrl: import.meta.url,
          name: "candidate-thread",
          memoryMb: opts.memoryMb ?? DEFAULT_CANDIDATE_MEMORY_MB,
          timeoutMs: opts.timeoutMs ?? DEFAULT_CANDIDATE_TIMEOUT_MS,
          log: opts.log,
          what: "candidate build",
          unavailable: (message) => ({ ok: false, reason: "unavailable", message }),
        });
  }

  /** Threads started so far (0 when inline). */
  get starts(): number {
    return this.thread?.starts ?? 0;
  }

  async run<K extends CandidateJob["kind"]>(job: Extract<CandidateJob, { kind: K }>, active: ActivePolicies): Promise<CandidateAnswer<K>> {
    const r = await this.answer(job, active);
    if (r.ok && r.kind !== job.kind) throw new Error(`a ${job.kind} job answered ${r.kind}`);
    return r as CandidateAnswer<K>;
  }

  /** A candidate's module as a runtime on this thread (replay runs it over the trail here). */
  async runtime(job: Extract<CandidateJob, { kind: "module" }>, active: ActivePolicies): Promise<{ ok: true; runtime: PolicyRuntime } | CandidateFailure> {
    const r = await this.run(job, active);
    if (!r.ok) return r;
    const m = r.module;
    return { ok: true, runtime: PolicyRuntime.fromModule(m.module, m.wasm, m.version, m.manifest) };
  }

  private async answer(job: CandidateJob, active: ActivePolicies): Promise<CandidateJobResult> {
    if (this.thread === null) return runCandidateJob(job, { set: active.set, runtime: active.runtime });
    const first = await this.thread.run({ job, base: { version: active.version, data: this.sent === active.version ? null : baseData(active) } });
    // A new thread (the old one stopped) holds no base yet: send it once more, with the base.
    const result = first.ok === false && first.reason === "base_missing" ? await this.thread.run({ job, base: { version: active.version, data: baseData(active) } }) : first;
    if (result.ok === false && result.reason === "base_missing") return { ok: false, reason: "unavailable", message: "the candidate thread did not take the active policies" };
    if (result.ok || result.reason !== "unavailable") this.sent = active.version;
    else this.sent = null;
    return result;
  }

  async close(): Promise<void> {
    await this.thread?.close();
  }
}

function baseData(a: ActivePolicies): BaseData {
  return { version: a.version, pieces: a.setPieces, module: a.runtime.module, wasm: a.wasm, manifest: a.manifest };
}
