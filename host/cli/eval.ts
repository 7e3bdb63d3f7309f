// zt eval <paths or .wasm> (--source S --destination D --port P | --roles r1,r2 --service S --action A [--mfa] [--incident-active])
// Prints the decision as JSON; exit 0 for ALLOW, 3 for DENY.
import { parseArgs } from "node:util";
import { REASON_NAMES, type Verdict } from "../../compiler/model.js";
import { PolicyRuntime } from "../engine/runtime.js";
import { EXIT, moduleFrom, printJson, UsageError } from "./io.js";

const USAGE =
  "usage: zt eval <paths…|module.wasm> --source ID --destination ID --port N\n" +
  "       zt eval <paths…|module.wasm> --roles r1,r2 --service NAME --action NAME [--mfa] [--incident-active]";

export async function evalCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      source: { type: "string" },
      destination: { type: "string" },
      port: { type: "string" },
      roles: { type: "string" },
      service: { type: "string" },
      action: { type: "string" },
      mfa: { type: "boolean", default: false },
      "incident-active": { type: "boolean", default: false },
    },
  });
  if (positionals.length === 0) throw new UsageError(USAGE);
  const isService = values.source !== undefined || values.destination !== undefined || values.port !== undefined;
  const isOperator = values.roles !== undefined || values.service !== undefined || values.action !== undefined;
  if (isService === isOperator) throw new UsageError(USAGE);
  let port = 0;
  if (isService) {
    if (!values.source || !values.destination || !values.port) throw new UsageError(USAGE);
    port = Number(values.port);
    if (!/^\d{1,5}$/.test(values.port) || port > 65535) throw new UsageError(`--port must be an integer 0-65535, got "${values.port}"`);
  } else if (!values.roles || !values.service || !values.action) throw new UsageError(USAGE);

  const wasm = await moduleFrom(positionals);
  if (!wasm) return EXIT.policyError;
  const rt = await PolicyRuntime.load(wasm);
  const v: Verdict = isService
    ? rt.evaluateService({ source: values.source!, destination: values.destination!, port })
    : rt.evaluateOperator({
        roles: values.roles!.split(",").filter((r) => r.length > 0),
        service: values.service!,
        action: values.action!,
        mfa: values.mfa!,
        incidentActive: values["incident-active"]!,
      });
  printJson({
    decision: v.allow ? "ALLOW" : "DENY",
    policy_matched: rt.ruleId(v.rule),
    reason: REASON_NAMES[v.reason],
    rollout: v.rollout,
    policy_version: rt.version,
  });
  return v.allow ? EXIT.ok : EXIT.deny;
}
