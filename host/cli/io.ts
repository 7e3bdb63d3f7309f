// Small helpers shared by the CLI commands: policy loading with printed diagnostics, JSON out.
import { readFile } from "node:fs/promises";
import { compilePolicySet, type CompiledModule } from "../../compiler/compile.js";
import { formatDiagnostic, loadPolicyFiles } from "../../compiler/load.js";
import type { PolicySet } from "../../compiler/model.js";

/** Exit codes of every `zt` command (README "CLI"). */
export const EXIT = { ok: 0, policyError: 1, usage: 2, deny: 3, internal: 4 } as const;

export class UsageError extends Error {}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** Loads and validates policy files; prints every error as file:line:col and returns null on failure. */
export async function loadOrReport(paths: readonly string[]): Promise<PolicySet | null> {
  const r = await loadPolicyFiles(paths);
  if (r.ok) return r.set;
  for (const e of r.errors) process.stderr.write(formatDiagnostic(e) + "\n");
  process.stderr.write(`${r.errors.length} error${r.errors.length === 1 ? "" : "s"}\n`);
  return null;
}

/** A compiled module from a .wasm file, or compiled from policy files. */
export async function moduleFrom(paths: readonly string[]): Promise<Uint8Array | null> {
  if (paths.length === 1 && paths[0]!.endsWith(".wasm")) return new Uint8Array(await readFile(paths[0]!));
  const set = await loadOrReport(paths);
  if (!set) return null;
  const m: CompiledModule = compilePolicySet(set);
  return m.wasm;
}
