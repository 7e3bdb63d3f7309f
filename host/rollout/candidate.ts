// A candidate policy set sent to the API (the console's "what if"): YAML or JSON documents
// that replace the active policies of the same names (like PUT /v1/policies/{name}), or make
// up the whole set. Compiled into its own module; the active one is never touched.
import { compilePolicySet } from "../../compiler/compile.js";
import { type Diagnostic, sortDiagnostics } from "../../compiler/diagnostics.js";
import { buildPolicySet } from "../../compiler/load.js";
import type { Policy, PolicySet } from "../../compiler/model.js";
import { type CompanionDocument, parsePolicyText } from "../../compiler/parse.js";
import { PolicyRuntime } from "../engine/runtime.js";

export interface Candidate {
  readonly set: PolicySet;
  readonly runtime: PolicyRuntime;
  readonly companions: readonly CompanionDocument[];
}

export type CandidateOutcome = { ok: true; candidate: Candidate } | { ok: false; errors: Diagnostic[] };

/**
 * Parses `text` (file name `label` in diagnostics); its policies overlay `base` unless base is
 * null. Without policies in the text, the base itself (its module already built) is the candidate.
 */
export async function candidateFromText(text: string, label: string, base: { set: PolicySet; runtime: PolicyRuntime } | null): Promise<CandidateOutcome> {
  const parsed = parsePolicyText(text, label);
  if (!parsed.ok) return { ok: false, errors: parsed.errors };
  if (parsed.policies.length === 0 && base) return { ok: true, candidate: { set: base.set, runtime: base.runtime, companions: parsed.companions } };
  return candidateFromPolicies(parsed.policies, parsed.companions, base?.set ?? null);
}

export async function candidateFromPolicies(policies: readonly Policy[], companions: readonly CompanionDocument[], base: PolicySet | null): Promise<CandidateOutcome> {
  const built = overlaySet(policies, base);
  if (!built.ok) return built;
  return { ok: true, candidate: await compiled(built.set, companions) };
}

/** `base`'s policies with `policies` in place of those of the same names, and without the names in `remove`; not compiled. */
export function overlaySet(policies: readonly Policy[], base: PolicySet | null, remove: readonly string[] = []): { ok: true; set: PolicySet } | { ok: false; errors: Diagnostic[] } {
  const names = new Set([...policies.map((p) => p.name), ...remove]);
  const built = buildPolicySet([...(base?.policies ?? []).filter((p) => !names.has(p.name)), ...policies]);
  return built.ok ? built : { ok: false, errors: sortDiagnostics(built.errors) };
}

export async function compiled(set: PolicySet, companions: readonly CompanionDocument[] = []): Promise<Candidate> {
  return { set, runtime: await PolicyRuntime.load(compilePolicySet(set).wasm), companions };
}
