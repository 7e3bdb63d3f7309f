// Files and directories -> one validated, canonical PolicySet (or every error at once).
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Diagnostic, sortDiagnostics } from "./diagnostics.js";
import { canonicalize, type Policy, type PolicySet } from "./model.js";
import { type CompanionDocument, parsePolicyText } from "./parse.js";

export { formatDiagnostic, type Diagnostic } from "./diagnostics.js";
export { parsePolicyText } from "./parse.js";

export type LoadOutcome =
  | { ok: true; set: PolicySet; files: string[]; companions: CompanionDocument[] }
  | { ok: false; errors: Diagnostic[] };

const POLICY_FILE = /\.(ya?ml|json)$/i;

/** Expands directories (recursively, sorted) into policy files; files are taken as given. */
export async function policyFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = await stat(p);
    if (s.isDirectory()) {
      const entries = (await readdir(p, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const e of entries) {
        if (e.name.startsWith(".")) continue;
        const child = join(p, e.name);
        if (e.isDirectory()) out.push(...(await policyFiles([child])));
        else if (POLICY_FILE.test(e.name)) out.push(child);
      }
    } else out.push(p);
  }
  return out;
}

/** Rules that span policies: names are unique across the whole set, whatever the kind. */
export function checkPolicySet(policies: readonly Policy[]): Diagnostic[] {
  const errors: Diagnostic[] = [];
  const first = new Map<string, Policy>();
  for (const p of policies) {
    const prev = first.get(p.name);
    const at = p.rules[0]?.at ?? { file: p.source, line: 1, col: 1 };
    if (prev) {
      const pat = prev.rules[0]?.at ?? { file: prev.source, line: 1, col: 1 };
      errors.push({ file: at.file, line: at.line, col: at.col, message: `duplicate policy name "${p.name}" (also defined in ${pat.file}:${pat.line}:${pat.col})` });
    } else first.set(p.name, p);
  }
  return errors;
}

/** Builds a canonical set from already-parsed policies, or reports cross-policy errors. */
export function buildPolicySet(policies: readonly Policy[]): { ok: true; set: PolicySet } | { ok: false; errors: Diagnostic[] } {
  const errors = checkPolicySet(policies);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, set: canonicalize(policies) };
}

/** One policy file's text and the name diagnostics give it (a path, or e.g. `main:policies/a.yaml`). */
export interface PolicyText {
  readonly file: string;
  readonly text: string;
}

/** Texts already read (from disk, a git revision, a store) -> one validated, canonical set. */
export function loadPolicyTexts(texts: readonly PolicyText[], errors: Diagnostic[] = []): LoadOutcome {
  const policies: Policy[] = [];
  const companions: CompanionDocument[] = [];
  for (const { file, text } of texts) {
    const r = parsePolicyText(text, file);
    if (r.ok) {
      policies.push(...r.policies);
      companions.push(...r.companions);
    } else errors.push(...r.errors);
  }
  errors.push(...checkPolicySet(policies));
  if (errors.length > 0) return { ok: false, errors: sortDiagnostics(errors) };
  return { ok: true, set: canonicalize(policies), files: texts.map((t) => t.file), companions };
}

/** The text of every policy file under `paths`, by file name, or the files that could not be read. */
export async function readPolicyTexts(paths: readonly string[]): Promise<{ ok: true; texts: Map<string, string> } | { ok: false; errors: Diagnostic[] }> {
  let files: string[];
  try {
    files = await policyFiles(paths);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, errors: [{ file: err.path ?? String(paths[0]), line: 1, col: 1, message: `cannot read: ${err.code ?? err.message}` }] };
  }
  const errors: Diagnostic[] = [];
  const texts = new Map<string, string>();
  for (const file of files) {
    try {
      texts.set(file, await readFile(file, "utf8"));
    } catch (e) {
      errors.push({ file, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, texts };
}

export async function loadPolicyFiles(paths: readonly string[]): Promise<LoadOutcome> {
  const read = await readPolicyTexts(paths);
  if (!read.ok) return read;
  const errors: Diagnostic[] = [];
  if (read.texts.size === 0) errors.push({ file: String(paths[0] ?? "."), line: 1, col: 1, message: "no policy files (*.yaml, *.yml, *.json) found" });
  return loadPolicyTexts([...read.texts].map(([file, text]) => ({ file, text })), errors);
}
