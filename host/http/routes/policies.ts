// GET/PUT/DELETE /v1/policies[/{name}], a policy's history and rollback, and GET /v1/module.wasm.
// Who may read and write: route-identity.ts (reads: reader trust domains; writes: admin).
// Writes go through the shared state (engine/shared-state.ts): If-Match against the policy's
// ETag, 409 for a name a policy file owns, 503 while the store is unreachable. Answers name files
// by their configured directory, never by the host's layout (shown-paths.ts).
import { type Context, Hono } from "hono";
import { unstorableText } from "../../audit/storable-text.js";
import type { Logger } from "../../common/logger.js";
import type { PolicyInfo, PolicyStore, ReloadReport } from "../../engine/policy-store.js";
import type { PolicyWriteOptions, PolicyWriteResult, SharedState, WriteRefusal } from "../../engine/shared-state.js";
import type { PolicyVersion } from "../../store/types.js";
import { documentType, parseJsonBytes, readBodyText } from "../body.js";
import type { EngineEnv } from "../context.js";
import { bodyErrorResponse, errorResponse } from "../errors.js";

export interface PolicyRouteDeps {
  readonly store: PolicyStore;
  readonly state: SharedState;
  readonly log: Logger;
  readonly maxPolicyBytes: number;
  /** Rewrites configured directories in answers (shown-paths.ts). */
  readonly hidePaths: (text: string) => string;
}

// Same rule as metadata.name in the policy language.
export const POLICY_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const SHA = /^[0-9a-f]{64}$/;
const MAX_MESSAGE = 1024;
const MAX_HISTORY_PAGE = 500;
/** A JSON policy document: nesting as deep as the language goes with room to spare; size is bounded by the body limit. */
const POLICY_JSON_BOUNDS = { maxDepth: 32, maxStringBytes: 64 * 1024, maxItems: 1, maxValuesPerItem: Number.MAX_SAFE_INTEGER };

function badName(c: Context<EngineEnv>, name: string): Response {
  return errorResponse(c, 400, { code: "invalid_name", message: `"${name.slice(0, 300)}" is not a valid policy name: 1-253 lowercase letters, digits, "-" and ".", starting and ending with a letter or digit`, path: "name" });
}

/** An ETag as sent in If-Match: `"sha256:<hex>"` (quotes and the prefix optional), or `*`. */
function parseTag(v: string): string | null {
  const t = v.trim();
  if (t === "*") return "*";
  const m = /^(?:W\/)?"?(?:sha256:)?([0-9a-f]{64})"?$/.exec(t);
  return m ? m[1]! : null;
}

function etagOf(sha256: string): string {
  return `"sha256:${sha256}"`;
}

type WriteOptionsResult = { ok: true; value: PolicyWriteOptions } | { ok: false; res: Response };

/** If-Match / If-None-Match, the change message (X-ZT-Message) and the author (the admin identity). */
function writeOptions(c: Context<EngineEnv>): WriteOptionsResult {
  const ifMatch = c.req.header("if-match");
  const ifNoneMatch = c.req.header("if-none-match");
  let tag: string | null = null;
  if (ifMatch !== undefined) {
    tag = parseTag(ifMatch);
    if (tag === null) return { ok: false, res: errorResponse(c, 400, { code: "invalid_if_match", message: 'If-Match must be the policy\'s ETag ("sha256:<64 hex>") or *' }) };
  }
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== "*") return { ok: false, res: errorResponse(c, 400, { code: "invalid_if_none_match", message: "If-None-Match on a policy write can only be * (create, never replace)" }) };
  const message = c.req.header("x-zt-message") ?? null;
  if (message !== null && (message.length > MAX_MESSAGE || unstorableText(message) !== null)) {
    return { ok: false, res: errorResponse(c, 400, { code: "invalid_message", message: `X-ZT-Message must be at most ${MAX_MESSAGE} characters of text` }) };
  }
  return { ok: true, value: { ifMatch: tag, ifNoneMatch: ifNoneMatch !== undefined, author: c.get("caller"), message } };
}

function historyJson(v: PolicyVersion, withDocument: boolean): Record<string, unknown> {
  return {
    revision: v.seq,
    action: v.action,
    version: v.sha256 === null ? null : `sha256:${v.sha256}`,
    rollback_of: v.rollback_of,
    author: v.author,
    message: v.message,
    created_at: v.created_at,
    ...(withDocument ? { document: v.document } : {}),
  };
}

export function refusal(c: Context<EngineEnv>, r: WriteRefusal, hidePaths: (text: string) => string = (t) => t): Response {
  const { ok: _ok, status, ...rest } = r;
  const error = { ...rest, message: hidePaths(rest.message), ...("file" in rest ? { file: hidePaths(rest.file) } : {}) };
  if (r.status === 422) {
    // Every `line:col: message`; `diagnostics` keeps the structured form.
    return errorResponse(c, 422, {
      code: r.code,
      message: r.message,
      errors: r.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`),
      diagnostics: r.diagnostics.map((d) => ({ line: d.line, col: d.col, message: d.message })),
    });
  }
  if (r.status === 412 && r.current) c.header("etag", `"${r.current.version}"`);
  if (r.status === 503) c.header("retry-after", "5");
  return errorResponse(c, status, error as { code: string; message: string });
}

function written(c: Context<EngineEnv>, r: PolicyWriteResult, log: Logger, what: string, shown: (p: PolicyInfo) => PolicyInfo, hidePaths: (text: string) => string): Response {
  if (!r.ok) return refusal(c, r, hidePaths);
  log.info(what, { policy: r.stored.name, revision: r.stored.seq, caller: c.get("caller"), version: r.version, request_id: c.get("requestId") });
  if (r.stored.sha256 !== null) c.header("etag", etagOf(r.stored.sha256));
  return c.json(
    { version: r.version, previous_version: r.previousVersion, policy: r.info === null ? null : shown(r.info), stored: historyJson(r.stored, false) },
    r.created && r.stored.action !== "delete" ? 201 : 200,
  );
}

export function policyRoutes(deps: PolicyRouteDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const { store, state, log, hidePaths } = deps;
  const shown = (p: PolicyInfo): PolicyInfo => ({ ...p, file: p.file === null ? null : hidePaths(p.file) });
  const shownReload = (r: ReloadReport | null): ReloadReport | null => (r === null ? null : { ...r, errors: r.errors.map(hidePaths) });

  app.get("/v1/policies", (c) => {
    const active = store.current();
    if (!active) return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
    return c.json({
      version: active.version,
      module_sha256: active.wasmSha256,
      loaded_at: active.loadedAt,
      mode: state.rollout.global(),
      policies: active.policies.map(shown),
      shadowed: active.shadowed.map((s) => ({ ...s, file: hidePaths(s.file) })),
      last_reload: shownReload(store.lastReload()),
      state: { revision: state.status().revision, stale: state.status().stale },
    });
  });

  app.get("/v1/policies/:name", (c) => {
    const active = store.current();
    if (!active) return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
    const name = c.req.param("name");
    const info: PolicyInfo | undefined = active.policies.find((p) => p.name === name);
    if (!info) return errorResponse(c, 404, { code: "policy_not_found", message: `no policy named "${name.slice(0, 300)}"` });
    c.header("etag", `"${info.version}"`);
    return c.json({ version: active.version, policy: shown(info) });
  });

  app.put("/v1/policies/:name", async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return badName(c, name);
    const o = writeOptions(c);
    if (!o.ok) return o.res;
    const type = documentType(c);
    if (!type.ok) return bodyErrorResponse(c, type);
    const body = await readBodyText(c, deps.maxPolicyBytes);
    if (!body.ok) return bodyErrorResponse(c, body);
    if (body.text.trim() === "") return errorResponse(c, 400, { code: "empty_body", message: "send the policy as YAML or JSON", path: "$" });
    if (type.json) {
      // Declared JSON: it must be JSON (bounded like every JSON body), not YAML that happens to parse.
      const json = parseJsonBytes(Buffer.from(body.text), POLICY_JSON_BOUNDS);
      if (!json.ok) return bodyErrorResponse(c, json);
    }
    const bad = unstorableText(body.text);
    if (bad !== null) return errorResponse(c, 400, { code: "invalid_text", message: `the policy text ${bad}`, path: "$" });
    return written(c, await state.putPolicy(name, body.text, o.value), log, "policy written", shown, hidePaths);
  });

  app.delete("/v1/policies/:name", async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return badName(c, name);
    const o = writeOptions(c);
    if (!o.ok) return o.res;
    return written(c, await state.deletePolicy(name, o.value), log, "policy deleted", shown, hidePaths);
  });

  app.post("/v1/policies/:name/rollback", async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return badName(c, name);
    const o = writeOptions(c);
    if (!o.ok) return o.res;
    const body = await readBodyText(c, 4096);
    if (!body.ok) return bodyErrorResponse(c, body);
    let to: { seq: number } | { sha256: string } | null = null;
    try {
      const v = (JSON.parse(body.text) as { to?: unknown } | null)?.to;
      if (typeof v === "number" && Number.isSafeInteger(v) && v >= 1) to = { seq: v };
      else if (typeof v === "string" && SHA.test(v.replace(/^sha256:/, ""))) to = { sha256: v.replace(/^sha256:/, "") };
    } catch {
      // reported below
    }
    if (to === null) return errorResponse(c, 400, { code: "invalid_request", message: 'send {"to": <revision number>} or {"to": "sha256:<hex>"} (see GET /v1/policies/{name}/history)', path: "$.to" });
    return written(c, await state.rollbackPolicy(name, to, o.value), log, "policy rolled back", shown, hidePaths);
  });

  app.get("/v1/policies/:name/history", async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return badName(c, name);
    const limit = intParam(c.req.query("limit"), 50, 1, MAX_HISTORY_PAGE);
    const before = intParam(c.req.query("before"), 0, 0, 2 ** 31 - 1);
    if (limit === null || before === null) return errorResponse(c, 400, { code: "invalid_request", message: `limit is 1..${MAX_HISTORY_PAGE}; before is a revision number` });
    const r = await state.history(name, limit, before === 0 ? null : before);
    if (!Array.isArray(r)) return refusal(c, r);
    const last = r[r.length - 1];
    return c.json({ name, versions: r.map((v) => historyJson(v, false)), next: r.length === limit && last ? `/v1/policies/${name}/history?limit=${limit}&before=${last.seq}` : null });
  });

  app.get("/v1/policies/:name/history/:revision", async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return badName(c, name);
    const seq = intParam(c.req.param("revision"), 0, 1, 2 ** 31 - 1);
    if (seq === null) return errorResponse(c, 400, { code: "invalid_request", message: "the revision is a whole number from 1", path: "revision" });
    const r = await state.version(name, seq);
    if (r === null) return errorResponse(c, 404, { code: "version_not_found", message: `policy "${name}" has no revision ${seq}` });
    if ("ok" in r) return refusal(c, r);
    if (r.sha256 !== null) c.header("etag", etagOf(r.sha256));
    return c.json({ name, ...historyJson(r, true) });
  });

  app.get("/v1/module.wasm", (c) => {
    const active = store.current();
    if (!active) return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
    const etag = `"${active.version}"`;
    const headers = {
      etag,
      "x-zt-module-sha256": active.wasmSha256,
      "x-zt-policy-version": active.version,
      "cache-control": "no-cache",
    };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    return c.body(active.wasm as Uint8Array<ArrayBuffer>, 200, { ...headers, "content-type": "application/wasm" });
  });

  return app;
}

/** A whole-number query or path parameter in [min, max]; `dflt` when absent; null when malformed. */
export function intParam(raw: string | undefined, dflt: number, min: number, max: number): number | null {
  if (raw === undefined || raw === "") return dflt;
  if (!/^\d{1,10}$/.test(raw)) return null;
  const n = Number(raw);
  return n >= min && n <= max ? n : null;
}
