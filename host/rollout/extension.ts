// The rollout tools' API on the engine's listener (host/http/extension.ts), all behind the
// admin middleware: policy tests against the active module or a candidate (POST /v1/tests),
// the exact diff between the active policies and a candidate (POST /v1/diff).
import { Hono, type Context } from "hono";
import type { Diagnostic } from "../../compiler/diagnostics.js";
import type { EngineEnv } from "../http/context.js";
import { readBodyText } from "../http/body.js";
import { errorResponse } from "../http/errors.js";
import type { EngineCore, Extension, ExtensionFactory } from "../http/extension.js";
import { candidateFromText } from "./candidate.js";
import { collectTests, runPolicyTests } from "./policy-tests.js";
import { diffPolicySets } from "../../compiler/diff/index.js";

export interface RolloutExtensionOptions {
  /** Largest document body accepted (tests, candidates). */
  maxBodyBytes?: number;
}

const BODY_LABEL = "body";

export function invalidDocuments(c: Context<EngineEnv>, errors: readonly Diagnostic[]): Response {
  return errorResponse(c, 422, {
    code: "invalid_document",
    message: `the documents do not validate (${errors.length} error${errors.length === 1 ? "" : "s"})`,
    errors: errors.map((d) => `${d.line}:${d.col}: ${d.message}`),
    diagnostics: errors.map((d) => ({ line: d.line, col: d.col, message: d.message })),
  });
}

export function noModule(c: Context<EngineEnv>): Response {
  return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
}

function routes(core: EngineCore, opts: RolloutExtensionOptions): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;

  // Body: PolicyTest documents, and optionally policies that replace the active ones of the same name.
  app.post("/v1/tests", core.admin, async (c) => {
    const active = core.store.current();
    if (!active) return noModule(c);
    const body = await readBodyText(c, maxBody);
    if (!body.ok) return errorResponse(c, body.status, { code: body.code, message: body.message, path: "$" });
    if (body.text.trim() === "") return errorResponse(c, 400, { code: "empty_body", message: "send PolicyTest documents as YAML or JSON", path: "$" });
    const cand = await candidateFromText(body.text, BODY_LABEL, active);
    if (!cand.ok) return invalidDocuments(c, cand.errors);
    const tests = collectTests(cand.candidate.companions, cand.candidate.set);
    if (!tests.ok) return invalidDocuments(c, tests.errors);
    if (tests.tests.length === 0) return errorResponse(c, 400, { code: "no_tests", message: "the body holds no PolicyTest document", path: "$" });
    return c.json(runPolicyTests(cand.candidate.runtime, cand.candidate.set, tests.tests));
  });

  // Body: the candidate's documents. ?replace=true: they are the whole new set; otherwise they
  // replace the active policies of the same names (a policy edit before it is saved).
  app.post("/v1/diff", core.admin, async (c) => {
    const active = core.store.current();
    if (!active) return noModule(c);
    const replace = c.req.query("replace");
    if (replace !== undefined && replace !== "true" && replace !== "false") return errorResponse(c, 400, { code: "invalid_request", message: 'query.replace must be "true" or "false"', path: "query.replace" });
    const body = await readBodyText(c, maxBody);
    if (!body.ok) return errorResponse(c, body.status, { code: body.code, message: body.message, path: "$" });
    if (body.text.trim() === "") return errorResponse(c, 400, { code: "empty_body", message: "send the candidate policies as YAML or JSON", path: "$" });
    const cand = await candidateFromText(body.text, BODY_LABEL, replace === "true" ? null : active);
    if (!cand.ok) return invalidDocuments(c, cand.errors);
    const diff = diffPolicySets(active.set, cand.candidate.set);
    return c.json({ old: { version: active.version }, new: { version: cand.candidate.runtime.version }, ...diff });
  });

  return app;
}

export function rolloutExtension(opts: RolloutExtensionOptions = {}): ExtensionFactory {
  return (core): Extension => ({ name: "rollout", app: routes(core, opts) });
}
