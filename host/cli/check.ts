// zt check <paths…>: validate policy files; prints a summary or every error.
import { parseArgs } from "node:util";
import { allRules } from "../../compiler/model.js";
import { EXIT, loadOrReport, printJson, UsageError } from "./io.js";

export async function checkCommand(argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: {} });
  if (positionals.length === 0) throw new UsageError("usage: zt check <paths…>");
  const set = await loadOrReport(positionals);
  if (!set) return EXIT.policyError;
  printJson({
    ok: true,
    policies: set.policies.map((p) => ({ name: p.name, kind: p.kind, rules: p.rules.length, source: p.source })),
    rules: allRules(set).length,
  });
  return EXIT.ok;
}
