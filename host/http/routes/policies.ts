// GET/PUT/DELETE /v1/policies[/{name}] and GET /v1/module.wasm.
// Who may read and write: route-identity.ts (reads: reader trust domains; writes: admin).
import { type Context, Hono } from "hono";
import type { RolloutMode } from "../../../compiler/model.js";
import { readBodyText } from "../body.js";
import type { EngineEnv } from "../context.js";
import { errorResponse } from "../errors.js";
import type { Logger } from "../../common/logger.js";
import type { ChangeResult, PolicyInfo, PolicyStore, ReloadReport } from "../../engine/policy-store.js";

export interface PolicyRouteDeps {
  readonly store: PolicyStore;
  readonly mode: RolloutMode;
  readonly log: Logger;
  readonly maxPolicyBytes: number;
  /** Rewrites configured directories in answers (shown-paths.ts). */
  readonly hidePaths: (text: string) => string;
}

// Same rule as metadata.name in the policy language; also keeps the name a safe file name.
const POLICY_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function policyRoutes(deps: PolicyRouteDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const { store, hidePaths } = deps;
  const shown = (p: PolicyInfo): PolicyInfo => ({ ...p, file: hidePaths(p.file), overrides_file: p.overrides_file === null ? null : hidePaths(p.overrides_file) });
  const shownReload = (r: ReloadReport | null): ReloadReport | null => (r === null ? null : { ...r, errors: r.errors.map(hidePaths) });

  app.get("/v1/policies", (c) => {
    const active = store.current();
    if (!active) return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
    return c.json({
      version: active.version,
      module_sha256: active.wasmSha256,
      loaded_at: active.loadedAt,
      mode: deps.mode,
      policies: active.policies.map(shown),
      last_reload: shownReload(store.lastReload()),
    });
  });

  app.get("/v1/policies/:name", (c) => {
    const active = store.current();
    if (!active) return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
    const name = c.req.param("name");
    const info = active.policies.find((p) => p.name === name);
    if (!info) return errorResponse(c, 404, { code: "policy_not_found", message: `no policy named "${name}"` });
    return c.json({ version: active.version, policy: shown(info) });
  });

  app.put("/v1/policies/:name", async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return errorResponse(c, 400, { code: "invalid_name", message: `"${name}" is not a valid policy name: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit`, path: "name" });
    const body = await readBodyText(c, deps.maxPolicyBytes);
    if (!body.ok) return errorResponse(c, body.status, { code: body.code, message: body.message, path: "$" });
    if (body.text.trim() === "") return errorResponse(c, 400, { code: "empty_body", message: "send the policy as YAML or JSON", path: "$" });
    const r = await store.putApiPolicy(name, body.text);
    if (r.ok) deps.log.info("policy written", { policy: name, caller: c.get("caller"), version: r.version, request_id: c.get("requestId") });
    return changeResponse(c, r, r.ok && r.created ? 201 : 200, shown);
  });

  app.delete("/v1/policies/:name", async (c) => {
    const name = c.req.param("name");
    const r = await store.deleteApiPolicy(name);
    if (r.ok) deps.log.info("policy deleted", { policy: name, caller: c.get("caller"), version: r.version, request_id: c.get("requestId") });
    return changeResponse(c, r, 200, shown);
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

function changeResponse(c: Context<EngineEnv>, r: ChangeResult, okStatus: 200 | 201, shown: (p: PolicyInfo) => PolicyInfo): Response {
  if (r.ok) return c.json({ version: r.version, previous_version: r.previousVersion, policy: r.info === null ? null : shown(r.info) }, okStatus);
  return errorResponse(c, r.status, {
    code: r.code,
    message: r.message,
    // The format: every `line:col: message`; `diagnostics` keeps the structured form.
    errors: r.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`),
    diagnostics: r.diagnostics.map((d) => ({ line: d.line, col: d.col, message: d.message })),
  });
}
