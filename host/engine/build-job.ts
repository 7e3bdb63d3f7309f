// One build as the serving thread needs it, done wherever the CPU work may run (build-thread.ts;
// inline only for the bench's before-figure): buildModule (parse, validate, compile, link),
// the load check (the module compiles and its image is valid), and everything the serving
// thread would otherwise derive by walking the whole policy set: each policy's summary and
// model hash, the metric label sources, and the set itself in serialized pieces (put back
// together on the serving thread a piece per turn of its event loop). What crosses back is plain data, the
// module's bytes (transferred) and its compiled WebAssembly.Module (shared, not recompiled).
import { createHash } from "node:crypto";
import type { Manifest } from "../../compiler/compile.js";
import type { Diagnostic } from "../../compiler/diagnostics.js";
import type { Policy, PolicyKind } from "../../compiler/model.js";
import { type LabelParts, labelParts } from "../metrics/labels.js";
import { type BuildInput, buildModule, type ParseCache } from "./build.js";
import { PolicyRuntime } from "./runtime.js";
import { type SetPieces, splitSet } from "./set-transfer.js";

/** A policy of the built set, as the serving thread lists it. */
export interface PolicySummary {
  name: string;
  kind: PolicyKind;
  /** Rule ids in evaluation order (`<policy>/<rule>`). */
  rules: string[];
  source: string;
  /** `sha256:<hex>` of the validated model: a file policy's version (API policies use their text's). */
  modelHash: string;
}

export interface ServingBuild {
  module: WebAssembly.Module;
  wasm: Uint8Array<ArrayBuffer>;
  version: string;
  manifest: Manifest;
  /** The PolicySet in serialized pieces (set-transfer.ts puts it back together). */
  set: SetPieces;
  policies: PolicySummary[];
  labels: LabelParts;
  fileOwners: Map<string, string>;
  shadowed: Map<string, string>;
}

export type BuildJobResult =
  | { ok: true; build: ServingBuild }
  | { ok: false; reason: "invalid"; diagnostics: Diagnostic[] }
  /** The build did not run to an answer (its thread died): nothing was learnt about the input. */
  | { ok: false; reason: "unavailable"; message: string };

export function modelHash(p: Policy): string {
  // The model without where it was read from: the same policy has the same version on every replica.
  const { source: _source, ...rest } = p;
  return "sha256:" + createHash("sha256").update(JSON.stringify(rest, (k, v: unknown) => (k === "at" ? undefined : v))).digest("hex");
}

export async function runBuildJob(input: BuildInput, cache: ParseCache): Promise<BuildJobResult> {
  const outcome = buildModule(input, cache);
  if (!outcome.ok) return { ok: false, reason: "invalid", diagnostics: outcome.diagnostics };
  const { built } = outcome;
  let runtime: PolicyRuntime;
  try {
    runtime = await PolicyRuntime.load(built.wasm);
  } catch (e) {
    return { ok: false, reason: "invalid", diagnostics: [{ file: "(compiler)", line: 1, col: 1, message: `cannot load the module: ${(e as Error).message}` }] };
  }
  const policies = built.set.policies.map((p) => ({
    name: p.name,
    kind: p.kind,
    rules: p.rules.map((r) => r.id),
    source: p.source,
    // API policies are versioned by their stored text: hashing their model would be wasted work.
    modelHash: built.fileOwners.has(p.name) ? modelHash(p) : "",
  }));
  return {
    ok: true,
    build: { module: runtime.module, wasm: built.wasm, version: runtime.version, manifest: runtime.manifest, set: splitSet(built.set), policies, labels: labelParts(built.set), fileOwners: built.fileOwners, shadowed: built.shadowed },
  };
}
