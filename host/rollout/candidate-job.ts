// What the rollout tools do with a candidate policy set, as one job that runs wherever CPU work
// may run (candidate-thread.ts; inline only as the reference and the before-figure): parse the
// candidate's documents, overlay them on the active set, compile, and answer what the route
// needs: the policy tests' report, the exact diff, the module (replay), or the diff between
// two stored versions of a policy (the console's history). Pure: plain data in and out, so
// the answers cross threads as they are.
import { diffPolicySets, type PolicyDiff } from "../../compiler/diff/index.js";
import type { Manifest } from "../../compiler/compile.js";
import type { Diagnostic } from "../../compiler/diagnostics.js";
import type { PolicySet } from "../../compiler/model.js";
import { parsePolicyText } from "../../compiler/parse.js";
import type { PolicyRuntime } from "../engine/runtime.js";
import { candidateFromText, overlaySet } from "./candidate.js";
import { collectTests, runPolicyTests, type TestReport } from "./policy-tests.js";

/** The active policies a candidate is read against. */
export interface CandidateBase {
  readonly set: PolicySet;
  readonly runtime: PolicyRuntime;
}

/** One stored version of a policy: its document, or null for a deletion. */
export interface StoredVersion {
  readonly document: string | null;
  readonly seq: number;
}

export type CandidateJob =
  /** PolicyTest documents, and policies that replace the active ones of the same names. */
  | { readonly kind: "tests"; readonly text: string; readonly label: string }
  /** The candidate's policies (the whole set when `replace`) against the active set. */
  | { readonly kind: "diff"; readonly text: string; readonly label: string; readonly replace: boolean }
  /** The candidate's compiled module (replay runs it over the trail on the serving side). */
  | { readonly kind: "module"; readonly text: string; readonly label: string; readonly replace: boolean }
  /** The active set with policy `name` at version `from`, against it at version `to`. */
  | { readonly kind: "compare"; readonly name: string; readonly from: StoredVersion; readonly to: StoredVersion };

export interface CandidateModule {
  readonly module: WebAssembly.Module;
  readonly wasm: Uint8Array;
  readonly version: string;
  readonly manifest: Manifest;
}

export type CandidateJobResult =
  | { ok: true; kind: "tests"; report: TestReport }
  | { ok: true; kind: "diff"; version: string; diff: PolicyDiff }
  | { ok: true; kind: "module"; module: CandidateModule }
  | { ok: true; kind: "compare"; diff: PolicyDiff }
  /** The documents do not validate; for "compare", `which` says which version does not build. */
  | { ok: false; reason: "invalid"; errors: Diagnostic[]; which?: "from" | "to" }
  | { ok: false; reason: "no_tests" }
  /** The job did not run to an answer (its thread stopped); nothing was learnt about the input. */
  | { ok: false; reason: "unavailable"; message: string };

export async function runCandidateJob(job: CandidateJob, base: CandidateBase): Promise<CandidateJobResult> {
  switch (job.kind) {
    case "tests":
      return tests(job.text, job.label, base);
    case "diff": {
      const cand = await candidateFromText(job.text, job.label, job.replace ? null : base);
      if (!cand.ok) return { ok: false, reason: "invalid", errors: cand.errors };
      return { ok: true, kind: "diff", version: cand.candidate.runtime.version, diff: diffPolicySets(base.set, cand.candidate.set) };
    }
    case "module": {
      const cand = await candidateFromText(job.text, job.label, job.replace ? null : base);
      if (!cand.ok) return { ok: false, reason: "invalid", errors: cand.errors };
      const rt = cand.candidate.runtime;
      return { ok: true, kind: "module", module: { module: rt.module, wasm: rt.wasm, version: rt.version, manifest: rt.manifest } };
    }
    case "compare":
      return compare(job.name, job.from, job.to, base.set);
  }
}

async function tests(text: string, label: string, base: CandidateBase): Promise<CandidateJobResult> {
  const cand = await candidateFromText(text, label, base);
  if (!cand.ok) return { ok: false, reason: "invalid", errors: cand.errors };
  const found = collectTests(cand.candidate.companions, cand.candidate.set);
  if (!found.ok) return { ok: false, reason: "invalid", errors: found.errors };
  if (found.tests.length === 0) return { ok: false, reason: "no_tests" };
  return { ok: true, kind: "tests", report: runPolicyTests(cand.candidate.runtime, cand.candidate.set, found.tests) };
}

/** The active set with `name` at version `v` (absent for a deletion). */
function setAt(base: PolicySet, name: string, v: StoredVersion): { ok: true; set: PolicySet } | { ok: false; errors: Diagnostic[] } {
  if (v.document === null) return overlaySet([], base, [name]);
  const parsed = parsePolicyText(v.document, `${name}@${v.seq}`);
  if (!parsed.ok) return { ok: false, errors: parsed.errors };
  return overlaySet(parsed.policies, base, [name]);
}

function compare(name: string, from: StoredVersion, to: StoredVersion, base: PolicySet): CandidateJobResult {
  const a = setAt(base, name, from);
  if (!a.ok) return { ok: false, reason: "invalid", errors: a.errors, which: "from" };
  const b = setAt(base, name, to);
  if (!b.ok) return { ok: false, reason: "invalid", errors: b.errors, which: "to" };
  return { ok: true, kind: "compare", diff: diffPolicySets(a.set, b.set) };
}
