// zt replay --candidate PATH [--since T] [--until T] [--destination ID] ...: the audit trail's
// decisions in a window decided again by the candidate's compiled module; prints every flow
// whose decision would change. Progress on stderr when it is a terminal.
// Exit 0 with the report; 1 the candidate does not validate; 2 usage, an empty window, or no
// audit database.
import { parseArgs } from "node:util";
import { compilePolicySet } from "../../compiler/compile.js";
import { formatDiagnostic, loadPolicyFiles, type LoadOutcome } from "../../compiler/load.js";
import type { PolicySet } from "../../compiler/model.js";
import { PolicyRuntime } from "../engine/runtime.js";
import { replay } from "../rollout/replay.js";
import { formatProgress, formatReplay } from "../rollout/replay-text.js";
import { describeSource, loadSource, parseSource, SourceError } from "../rollout/sources.js";
import { parseWindow } from "../rollout/window.js";
import { EXIT, printJson, UsageError } from "./io.js";
import { withTrailDb } from "./trail-db.js";

const USAGE = `usage: zt replay --candidate PATH [--candidate PATH…] [--since T] [--until T] [--destination ID]
                 [--format text|json] [--max-flows N] [--dsn URL] [--data-dir DIR] [--progress|--no-progress]
  --candidate    policy files or directories (or one REV:PATH git revision): the policy set to try
  --since/until  RFC 3339 timestamps, or durations back from now (90m, 24h, 28d); default: the last 24h
  --destination  only decisions for this SPIFFE ID or pattern (e.g. spiffe://hanzo.ai/hanzo-k8s/hanzo/*)
  --dsn          the audit database (default $ZT_AUDIT_DSN; else the embedded trail in --data-dir, $ZT_DATA_DIR or ./data)`;

/** The candidate set: paths (any number) or one git revision. Null after printing its errors. */
export async function loadCandidate(operands: readonly string[]): Promise<{ set: PolicySet; label: string } | null> {
  let r: LoadOutcome;
  let label: string;
  try {
    const specs = operands.map((o) => parseSource(o, null));
    if (specs.length > 1 && specs.some((s) => s.kind !== "path")) throw new UsageError("give either paths or one REV:PATH as --candidate");
    label = specs.map(describeSource).join(" ");
    r = specs.length === 1 ? await loadSource(specs[0]!) : await loadPolicyFiles(operands);
  } catch (e) {
    if (e instanceof SourceError) throw new UsageError(e.message);
    throw e;
  }
  if (r.ok) return { set: r.set, label };
  for (const e of r.errors) process.stderr.write(formatDiagnostic(e) + "\n");
  process.stderr.write(`the candidate does not validate: ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}\n`);
  return null;
}

export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      candidate: { type: "string", multiple: true },
      since: { type: "string" },
      until: { type: "string" },
      destination: { type: "string" },
      format: { type: "string", default: "text" },
      "max-flows": { type: "string" },
      dsn: { type: "string" },
      "data-dir": { type: "string" },
      progress: { type: "boolean" },
      "no-progress": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  if (!values.candidate || values.candidate.length === 0) throw new UsageError(`--candidate is required\n${USAGE}`);
  if (values.format !== "text" && values.format !== "json") throw new UsageError(`--format must be text or json, got "${values.format}"`);
  let maxFlows: number | undefined;
  if (values["max-flows"] !== undefined) {
    if (!/^\d{1,9}$/.test(values["max-flows"]) || Number(values["max-flows"]) < 1) throw new UsageError(`--max-flows must be a positive integer, got "${values["max-flows"]}"`);
    maxFlows = Number(values["max-flows"]);
  }
  const w = parseWindow(values, { since: "--since", until: "--until", destination: "--destination" });
  if (!w.ok) throw new UsageError(`${w.path}: ${w.message}`);
  const cand = await loadCandidate(values.candidate);
  if (!cand) return EXIT.policyError;
  const runtime = await PolicyRuntime.load(compilePolicySet(cand.set).wasm);
  const showProgress = values["no-progress"] ? false : (values.progress ?? process.stderr.isTTY === true);
  const report = await withTrailDb(
    { dsn: values.dsn, dataDir: values["data-dir"] },
    (sql) =>
      replay(sql, w, runtime, {
        ...(maxFlows !== undefined ? { maxFlows } : {}),
        ...(showProgress ? { onProgress: (p) => process.stderr.write(`\r${formatProgress(p)}\x1b[K`) } : {}),
      }),
    { onError: () => showProgress && process.stderr.write("\n") },
  );
  if (showProgress) process.stderr.write(`\r${formatProgress({ records: report.records.read, fraction: 1, elapsedMs: report.duration_ms })}\x1b[K\n`);
  if (values.format === "json") printJson({ candidate: cand.label, ...report });
  else process.stdout.write(formatReplay(report, cand.label));
  return EXIT.ok;
}
