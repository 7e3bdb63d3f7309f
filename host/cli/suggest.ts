// zt suggest [--since T] [--until T] [--destination ID] [--all] [--generalize namespace] [--name N]:
// the smallest ServiceAccessPolicy that allows exactly the flows the audit trail observed
// (observe mode's would-be denials, or with --all every service request), as YAML `zt check`
// accepts. Exit 0 with the YAML; 2 usage, an empty window, too many flows, or no database.
import { parseArgs } from "node:util";
import { buildSuggestion, observedFlows, parseSuggestOptions, TooManyFlowsError } from "../rollout/suggest.js";
import { parseWindow } from "../rollout/window.js";
import { EXIT, printJson, UsageError } from "./io.js";
import { withTrailDb } from "./trail-db.js";

const USAGE = `usage: zt suggest [--since T] [--until T] [--destination ID] [--all] [--generalize namespace]
                  [--name NAME] [--format yaml|json] [--dsn URL] [--data-dir DIR]
  Prints the smallest ServiceAccessPolicy allowing exactly the observed flows (source, destination, port).
  default: observe mode's would-be denials (DENY, not enforced) in the window; --all: every service request
  --generalize namespace   write each source as its namespace (spiffe://td/cluster/ns/*), said in a comment
  --since/until            RFC 3339 timestamps, or durations back from now (90m, 24h, 28d); default: the last 24h`;

export async function suggestCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      since: { type: "string" },
      until: { type: "string" },
      destination: { type: "string" },
      all: { type: "boolean", default: false },
      generalize: { type: "string", default: "none" },
      name: { type: "string", default: "suggested" },
      format: { type: "string", default: "yaml" },
      dsn: { type: "string" },
      "data-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  if (values.format !== "yaml" && values.format !== "json") throw new UsageError(`--format must be yaml or json, got "${values.format}"`);
  const o = parseSuggestOptions({ name: values.name, generalize: values.generalize, mode: values.all ? "all" : "denied" }, { name: "--name", generalize: "--generalize", mode: "--all" });
  if (!o.ok) throw new UsageError(`${o.path}: ${o.message}`);
  const w = parseWindow(values, { since: "--since", until: "--until", destination: "--destination" });
  if (!w.ok) throw new UsageError(`${w.path}: ${w.message}`);
  const seen = await withTrailDb({ dsn: values.dsn, dataDir: values["data-dir"] }, (sql) => observedFlows(sql, w, o.value.mode), { usage: (e) => e instanceof TooManyFlowsError });
  const s = buildSuggestion(seen.flows, seen.deniedByRule, { ...o.value, window: w });
  if (values.format === "json") printJson({ ...s, records: seen.records });
  else process.stdout.write(s.yaml);
  return EXIT.ok;
}
