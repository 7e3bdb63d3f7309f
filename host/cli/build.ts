// zt build <paths…> -o policy.wasm: compile a policy set into a module; prints its version.
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { compilePolicySet } from "../../compiler/compile.js";
import { EXIT, loadOrReport, printJson, UsageError } from "./io.js";

export async function buildCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { output: { type: "string", short: "o" } },
  });
  if (positionals.length === 0 || !values.output) throw new UsageError("usage: zt build <paths…> -o policy.wasm");
  const set = await loadOrReport(positionals);
  if (!set) return EXIT.policyError;
  const m = compilePolicySet(set);
  await writeFile(values.output, m.wasm);
  printJson({ version: m.version, output: values.output, bytes: m.wasm.length, policies: m.manifest.policies.length, rules: m.manifest.rules });
  return EXIT.ok;
}
