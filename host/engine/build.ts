// From policy texts to a module: parse (cached per text by its SHA-256, so a change next to
// large policies re-parses only what changed), resolve names (a file owns its names: an API
// policy of the same name is set aside and reported), validate the set, compile and link.
// Pure CPU work on plain inputs and outputs, so it can run on any thread.
import { createHash } from "node:crypto";
import { compilePolicySet, type Manifest } from "../../compiler/compile.js";
import { type Diagnostic, sortDiagnostics } from "../../compiler/diagnostics.js";
import { buildPolicySet } from "../../compiler/load.js";
import type { Policy, PolicySet } from "../../compiler/model.js";
import { parsePolicyText, type ParseOutcome } from "../../compiler/parse.js";

/** A policy file under ZT_POLICY_PATH. */
export interface FileText {
  file: string;
  text: string;
}

/** A policy written through the API: its name and its stored text. */
export interface ApiText {
  name: string;
  text: string;
}

export interface BuildInput {
  files: readonly FileText[];
  api: readonly ApiText[];
}

export interface BuiltModule {
  set: PolicySet;
  wasm: Uint8Array<ArrayBuffer>;
  version: string;
  manifest: Manifest;
  /** Where each file policy came from (name -> file). */
  fileOwners: Map<string, string>;
  /** API policies not served because a file defines the same name (name -> that file). */
  shadowed: Map<string, string>;
}

export type BuildOutcome = { ok: true; built: BuiltModule } | { ok: false; diagnostics: Diagnostic[] };

/** Where an API policy's diagnostics point (no file on disk holds it). */
export function apiSource(name: string): string {
  return `api:${name}`;
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Parse results by (source, text hash); entries not used by the latest build are dropped. */
export class ParseCache {
  private entries = new Map<string, ParseOutcome>();
  private used = new Set<string>();

  parse(source: string, text: string): ParseOutcome {
    const key = `${source}\0${sha256(text)}`;
    this.used.add(key);
    let hit = this.entries.get(key);
    if (hit === undefined) {
      hit = parsePolicyText(text, source);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /** Keeps what the build that just finished used (and, across a failed build, what it tried). */
  sweep(): void {
    for (const k of this.entries.keys()) if (!this.used.has(k)) this.entries.delete(k);
    this.used = new Set();
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Parses every text; the API policy documents must each hold exactly one policy of their name. */
export function parseInputs(input: BuildInput, cache: ParseCache): { files: Policy[]; api: Policy[]; errors: Diagnostic[] } {
  const files: Policy[] = [];
  const api: Policy[] = [];
  const errors: Diagnostic[] = [];
  for (const f of input.files) {
    const r = cache.parse(f.file, f.text);
    if (r.ok) files.push(...r.policies);
    else errors.push(...r.errors);
  }
  for (const a of input.api) {
    const r = cache.parse(apiSource(a.name), a.text);
    if (!r.ok) {
      errors.push(...r.errors);
      continue;
    }
    const e = singlePolicyError(a.name, r.policies, apiSource(a.name));
    if (e) errors.push(e);
    else api.push(r.policies[0]!);
  }
  return { files, api, errors };
}

/** An API document holds exactly one policy, named as in the URL; null when it does. */
export function singlePolicyError(name: string, policies: readonly Policy[], file: string): Diagnostic | null {
  if (policies.length !== 1) return { file, line: 1, col: 1, message: `expected exactly one policy document, found ${policies.length}` };
  if (policies[0]!.name !== name) return { file, line: 1, col: 1, message: `metadata.name "${policies[0]!.name}" does not match the name in the URL ("${name}")` };
  return null;
}

export function buildModule(input: BuildInput, cache: ParseCache): BuildOutcome {
  try {
    const parsed = parseInputs(input, cache);
    if (parsed.errors.length > 0) return { ok: false, diagnostics: sortDiagnostics(parsed.errors) };
    const fileOwners = new Map<string, string>();
    for (const p of parsed.files) if (!fileOwners.has(p.name)) fileOwners.set(p.name, p.source);
    const shadowed = new Map<string, string>();
    const merged = [...parsed.files];
    for (const p of parsed.api) {
      const owner = fileOwners.get(p.name);
      if (owner !== undefined) shadowed.set(p.name, owner);
      else merged.push(p);
    }
    const setResult = buildPolicySet(merged);
    if (!setResult.ok) return { ok: false, diagnostics: sortDiagnostics(setResult.errors) };
    let compiled: ReturnType<typeof compilePolicySet>;
    try {
      compiled = compilePolicySet(setResult.set);
    } catch (e) {
      return { ok: false, diagnostics: [{ file: "(compiler)", line: 1, col: 1, message: `cannot build the module: ${(e as Error).message}` }] };
    }
    return { ok: true, built: { set: setResult.set, wasm: compiled.wasm, version: compiled.version, manifest: compiled.manifest, fileOwners, shadowed } };
  } finally {
    cache.sweep();
  }
}
