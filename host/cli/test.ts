// zt test <paths…> [-v] [--format text|json]: runs the PolicyTest documents found beside the
// policies against the compiled module; prints PASS/FAIL, a summary line and rule coverage.
// Exit 0: every case passes; 1: a case fails, or a policy or test file does not validate.
import { parseArgs } from "node:util";
import { compilePolicySet } from "../../compiler/compile.js";
import { formatDiagnostic, loadPolicyFiles } from "../../compiler/load.js";
import { PolicyRuntime } from "../engine/runtime.js";
import { collectTests, formatTestReport, runPolicyTests } from "../rollout/policy-tests.js";
import { EXIT, printJson, UsageError } from "./io.js";

const USAGE = "usage: zt test <paths…> [-v|--verbose] [--format text|json]";

export async function testCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { verbose: { type: "boolean", short: "v", default: false }, format: { type: "string", default: "text" } },
  });
  if (positionals.length === 0) throw new UsageError(USAGE);
  if (values.format !== "text" && values.format !== "json") throw new UsageError(`--format must be text or json, got "${values.format}"`);
  const loaded = await loadPolicyFiles(positionals);
  const collected = loaded.ok ? collectTests(loaded.companions, loaded.set) : { ok: false as const, errors: loaded.errors };
  if (!collected.ok) {
    for (const e of collected.errors) process.stderr.write(formatDiagnostic(e) + "\n");
    process.stderr.write(`${collected.errors.length} error${collected.errors.length === 1 ? "" : "s"}\n`);
    return EXIT.policyError;
  }
  if (!loaded.ok) return EXIT.policyError;
  if (collected.tests.length === 0) {
    process.stderr.write(`zt test: no PolicyTest documents under ${positionals.join(", ")}\n`);
    return EXIT.policyError;
  }
  const runtime = await PolicyRuntime.load(compilePolicySet(loaded.set).wasm);
  const report = runPolicyTests(runtime, loaded.set, collected.tests);
  if (values.format === "json") printJson(report);
  else process.stdout.write(formatTestReport(report, values.verbose!));
  return report.summary.fail === 0 ? EXIT.ok : EXIT.policyError;
}
