// The rollout tools' API on the engine's listener (host/http/extension.ts), all behind the
// admin middleware: policy tests against the active module or a candidate (POST /v1/tests),
// the exact diff between the active policies and a candidate (POST /v1/diff), replay of the
// audit trail with a candidate (POST /v1/replay), the least-privilege suggestion from observed
// traffic (GET /v1/suggest), each one at a time; and the Phase 4 admission gate
// (admission-route.ts, identity rule `own`: the kube-apiserver holds no SVID).
import { Hono, type Context } from "hono";
import type { Diagnostic } from "../../compiler/diagnostics.js";
import type { EngineEnv } from "../http/context.js";
import { documentType, readBodyText, readJsonBody } from "../http/body.js";
import { bodyErrorResponse, errorResponse } from "../http/errors.js";
import type { EngineCore, Extension, ExtensionFactory } from "../http/extension.js";
import { type CandidateFailure, Candidates, type CandidatesOptions } from "./candidates.js";
import type { Sql } from "postgres";
import { admissionRoutes } from "./admission-route.js";
import { replay } from "./replay.js";
import { buildSuggestion, observedFlows, parseSuggestOptions, TooManyFlowsError } from "./suggest.js";
import { parseWindow } from "./window.js";
import { NoRecordsError, openTrailConnection } from "./trail.js";

export interface RolloutExtensionOptions {
  /** Largest document body accepted (tests, candidates). */
  maxBodyBytes?: number;
  /**
   * The audit trail's database (replay, suggest): a DSN with SELECT on it (the engine's role).
   * Each replay opens one connection of its own, so a long window never holds the engine's
   * query pool; absent: those routes answer 503.
   */
  trailDsn?: string | null;
  /** Where candidates are built (candidates.ts): their own thread by default. */
  candidates?: Omit<CandidatesOptions, "log">;
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

/** The answer for a candidate job that did not succeed: 422 with the diagnostics, 503 when it did not run. */
function candidateFailure(c: Context<EngineEnv>, r: CandidateFailure): Response {
  if (r.reason === "invalid") return invalidDocuments(c, r.errors);
  if (r.reason === "no_tests") return errorResponse(c, 400, { code: "no_tests", message: "the body holds no PolicyTest document", path: "$" });
  return errorResponse(c, 503, { code: "candidate_unavailable", message: `the candidate was not built: ${r.message}` });
}

function routes(core: EngineCore, opts: RolloutExtensionOptions, candidates: Candidates): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;

  // Body: PolicyTest documents, and optionally policies that replace the active ones of the same name.
  app.post("/v1/tests", core.admin, async (c) => {
    const active = core.store.current();
    if (!active) return noModule(c);
    const type = documentType(c);
    if (!type.ok) return bodyErrorResponse(c, type);
    const body = await readBodyText(c, maxBody);
    if (!body.ok) return bodyErrorResponse(c, body);
    if (body.text.trim() === "") return errorResponse(c, 400, { code: "empty_body", message: "send PolicyTest documents as YAML or JSON", path: "$" });
    const r = await candidates.run({ kind: "tests", text: body.text, label: BODY_LABEL }, active);
    if (!r.ok) return candidateFailure(c, r);
    return c.json(r.report);
  });

  // Body: the candidate's documents. ?replace=true: they are the whole new set; otherwise they
  // replace the active policies of the same names (a policy edit before it is saved).
  app.post("/v1/diff", core.admin, async (c) => {
    const active = core.store.current();
    if (!active) return noModule(c);
    const replace = c.req.query("replace");
    if (replace !== undefined && replace !== "true" && replace !== "false") return errorResponse(c, 400, { code: "invalid_request", message: 'query.replace must be "true" or "false"', path: "query.replace" });
    const type = documentType(c);
    if (!type.ok) return bodyErrorResponse(c, type);
    const body = await readBodyText(c, maxBody);
    if (!body.ok) return bodyErrorResponse(c, body);
    if (body.text.trim() === "") return errorResponse(c, 400, { code: "empty_body", message: "send the candidate policies as YAML or JSON", path: "$" });
    const r = await candidates.run({ kind: "diff", text: body.text, label: BODY_LABEL, replace: replace === "true" }, active);
    if (!r.ok) return candidateFailure(c, r);
    return c.json({ old: { version: active.version }, new: { version: r.version }, ...r.diff });
  });

  /**
   * Runs `read` on a connection of its own to the trail, one such read per route at a time
   * (each reads a whole window from the database the engine writes to); an empty window is a
   * 400, a trail that cannot be read a 503.
   */
  const busy = new Set<string>();
  const readingTrail = async (c: Context<EngineEnv>, what: "replay" | "suggest", read: (sql: Sql) => Promise<Response>): Promise<Response> => {
    if (!opts.trailDsn) return errorResponse(c, 503, { code: "no_audit_trail", message: `${what} needs the PostgreSQL audit trail (ZT_AUDIT_DSN or the embedded one)` });
    if (busy.has(what)) return errorResponse(c, 429, { code: `${what}_in_progress`, message: `another ${what} is running; try again when it has finished` });
    busy.add(what);
    const sql = openTrailConnection(opts.trailDsn, `zt-rollout-${what}`);
    try {
      return await read(sql);
    } catch (e) {
      if (e instanceof NoRecordsError) return errorResponse(c, 400, { code: "no_records", message: e.message, path: what === "replay" ? "$.since" : "query.since" });
      if (e instanceof TooManyFlowsError) return errorResponse(c, 400, { code: "too_many_flows", message: e.message, path: "query.since" });
      core.log.warn(`${what} failed`, { err: e, request_id: c.get("requestId") });
      return errorResponse(c, 503, { code: "audit_unavailable", message: `the audit trail could not be read: ${(e as Error).message}` });
    } finally {
      busy.delete(what);
      await sql.end({ timeout: 5 });
    }
  };

  app.post("/v1/replay", core.admin, async (c) => {
    const active = core.store.current();
    if (!active) return noModule(c);
    if (!opts.trailDsn) return errorResponse(c, 503, { code: "no_audit_trail", message: "replay needs the PostgreSQL audit trail (ZT_AUDIT_DSN or the embedded one)" });
    const body = await readJsonBody(c, maxBody, { maxDepth: 2, maxStringBytes: maxBody, maxItems: 1, maxValuesPerItem: 64 });
    if (!body.ok) return bodyErrorResponse(c, body);
    const parsed = parseReplayBody(body.batch ? [] : body.value);
    if (!parsed.ok) return errorResponse(c, 400, { code: "invalid_request", message: `${parsed.path}: ${parsed.message}`, path: parsed.path });
    const q = parsed.value;
    const w = parseWindow(q, { since: "$.since", until: "$.until", destination: "$.destination" });
    if (!w.ok) return errorResponse(c, 400, { code: "invalid_request", message: `${w.path}: ${w.message}`, path: w.path });
    const r = await candidates.runtime({ kind: "module", text: q.candidate, label: BODY_LABEL, replace: q.replace }, active);
    if (!r.ok) return candidateFailure(c, r);
    return readingTrail(c, "replay", async (sql) => c.json(await replay(sql, w, r.runtime, q.max_flows !== undefined ? { maxFlows: q.max_flows } : {})));
  });

  // ?since&until&destination&mode=denied|all&generalize=none|namespace&name&format=json|yaml
  app.get("/v1/suggest", core.admin, async (c) => {
    const q = c.req.query();
    for (const k of Object.keys(q)) if (!SUGGEST_KEYS.includes(k)) return errorResponse(c, 400, { code: "invalid_request", message: `query.${k}: unknown parameter (allowed: ${SUGGEST_KEYS.join(", ")})`, path: `query.${k}` });
    const format = q.format ?? "json";
    if (format !== "json" && format !== "yaml") return errorResponse(c, 400, { code: "invalid_request", message: `query.format: must be "json" or "yaml", got "${format}"`, path: "query.format" });
    const o = parseSuggestOptions(q, { name: "query.name", generalize: "query.generalize", mode: "query.mode" });
    if (!o.ok) return errorResponse(c, 400, { code: "invalid_request", message: `${o.path}: ${o.message}`, path: o.path });
    const w = parseWindow(q, { since: "query.since", until: "query.until", destination: "query.destination" });
    if (!w.ok) return errorResponse(c, 400, { code: "invalid_request", message: `${w.path}: ${w.message}`, path: w.path });
    return readingTrail(c, "suggest", async (sql) => {
      const seen = await observedFlows(sql, w, o.value.mode);
      const s = buildSuggestion(seen.flows, seen.deniedByRule, { ...o.value, window: w });
      if (format === "yaml") return c.body(s.yaml, 200, { "content-type": "application/yaml; charset=utf-8" });
      return c.json({ ...s, records: seen.records });
    });
  });

  app.route("/", admissionRoutes(core, maxBody));
  return app;
}

interface ReplayBody {
  candidate: string;
  replace: boolean;
  since?: string;
  until?: string;
  destination?: string;
  max_flows?: number;
}

const SUGGEST_KEYS = ["since", "until", "destination", "mode", "generalize", "name", "format"];
const REPLAY_KEYS = ["candidate", "replace", "since", "until", "destination", "max_flows"];

/** The JSON body of POST /v1/replay (parsed under bounds), checked field by field; errors carry the JSON path. */
export function parseReplayBody(v: unknown): { ok: true; value: ReplayBody } | { ok: false; path: string; message: string } {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return { ok: false, path: "$", message: "must be a JSON object" };
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!REPLAY_KEYS.includes(k)) return { ok: false, path: `$.${k}`, message: `unknown field (allowed: ${REPLAY_KEYS.join(", ")})` };
  if (typeof o.candidate !== "string" || o.candidate.trim() === "") return { ok: false, path: "$.candidate", message: "must be the candidate policies as YAML or JSON text" };
  if (o.replace !== undefined && typeof o.replace !== "boolean") return { ok: false, path: "$.replace", message: "must be true or false" };
  for (const k of ["since", "until", "destination"] as const) if (o[k] !== undefined && typeof o[k] !== "string") return { ok: false, path: `$.${k}`, message: "must be a string" };
  if (o.max_flows !== undefined && (typeof o.max_flows !== "number" || !Number.isInteger(o.max_flows) || o.max_flows < 1 || o.max_flows > 1_000_000)) return { ok: false, path: "$.max_flows", message: "must be an integer 1-1000000" };
  const value: ReplayBody = { candidate: o.candidate, replace: o.replace === true };
  if (o.since !== undefined) value.since = o.since as string;
  if (o.until !== undefined) value.until = o.until as string;
  if (o.destination !== undefined) value.destination = o.destination as string;
  if (o.max_flows !== undefined) value.max_flows = o.max_flows as number;
  return { ok: true, value };
}

export function rolloutExtension(opts: RolloutExtensionOptions = {}): ExtensionFactory {
  return (core): Extension => {
    const candidates = new Candidates({ ...opts.candidates, log: core.log });
    return { name: "rollout", app: routes(core, opts, candidates), close: () => candidates.close() };
  };
}
