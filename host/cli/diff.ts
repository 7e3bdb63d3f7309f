// zt diff OLD NEW [--format text|json]: every request whose decision differs between two
// policy sets, exactly (compiler/diff), each operand a path, a git revision (REV:PATH, or a
// bare REV meaning the other operand's path) or a stored version. Exit 0 with the report;
// 1 when an operand's policies do not validate; 2 usage (unknown revision, no such path).
import { parseArgs } from "node:util";
import { diffPolicySets } from "../../compiler/diff/index.js";
import { formatDiagnostic } from "../../compiler/load.js";
import type { PolicySet } from "../../compiler/model.js";
import { formatDiff } from "../rollout/diff-text.js";
import { describeSource, loadSource, parseSource, SourceError } from "../rollout/sources.js";
import { EXIT, printJson, UsageError } from "./io.js";

const USAGE = "usage: zt diff OLD NEW [--format text|json]\n  OLD, NEW: a policy file or directory, a git revision REV:PATH (e.g. main:policies), or a bare REV (the other operand's path at REV)";

async function load(operand: string, other: string): Promise<{ set: PolicySet; label: string } | null> {
  let spec;
  try {
    spec = parseSource(operand, other);
    const r = await loadSource(spec);
    if (r.ok) return { set: r.set, label: describeSource(spec) };
    for (const e of r.errors) process.stderr.write(formatDiagnostic(e) + "\n");
    process.stderr.write(`${describeSource(spec)}: ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}\n`);
    return null;
  } catch (e) {
    if (e instanceof SourceError) throw new UsageError(e.message);
    throw e;
  }
}

export async function diffCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { format: { type: "string", default: "text" } } });
  if (positionals.length !== 2) throw new UsageError(USAGE);
  if (values.format !== "text" && values.format !== "json") throw new UsageError(`--format must be text or json, got "${values.format}"`);
  const [oldArg, newArg] = positionals as [string, string];
  const before = await load(oldArg, newArg);
  const after = await load(newArg, oldArg);
  if (!before || !after) return EXIT.policyError;
  const diff = diffPolicySets(before.set, after.set);
  if (values.format === "json") printJson({ old: before.label, new: after.label, ...diff });
  else process.stdout.write(formatDiff(diff, before.label, after.label));
  return EXIT.ok;
}
