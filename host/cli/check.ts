// zt check <paths…>: validate policy files and the companion documents beside them (tests,
// mesh, access routes); prints a summary or every error as file:line:col.
import { parseArgs } from "node:util";
import { validateCompanions } from "../../compiler/companions.js";
import { sortDiagnostics } from "../../compiler/diagnostics.js";
import { formatDiagnostic, loadPolicyFiles } from "../../compiler/load.js";
import { allRules } from "../../compiler/model.js";
import { EXIT, printJson, UsageError } from "./io.js";

export async function checkCommand(argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: {} });
  if (positionals.length === 0) throw new UsageError("usage: zt check <paths…>");
  const r = await loadPolicyFiles(positionals);
  const errors = r.ok ? sortDiagnostics(validateCompanions(r.companions)) : r.errors;
  if (!r.ok || errors.length > 0) {
    for (const e of errors) process.stderr.write(formatDiagnostic(e) + "\n");
    process.stderr.write(`${errors.length} error${errors.length === 1 ? "" : "s"}\n`);
    return EXIT.policyError;
  }
  printJson({
    ok: true,
    policies: r.set.policies.map((p) => ({ name: p.name, kind: p.kind, rules: p.rules.length, source: p.source })),
    rules: allRules(r.set).length,
    documents: r.companions.map((d) => ({ kind: d.kind, source: d.file })),
  });
  return EXIT.ok;
}
