// PUT/DELETE/GET /v1/incidents[/{id}]: incidents that `requireIncident` conditions accept.
// All admin (route-identity.ts): knowing which incidents are open is itself sensitive. Writes go to the
// shared state and are applied here before the answer; every replica follows within its sync.
import { Hono } from "hono";
import { unstorableText } from "../../audit/storable-text.js";
import { parseJsonBytes, readBodyBytes, requireJsonType } from "../body.js";
import type { EngineEnv } from "../context.js";
import { bodyErrorResponse, errorResponse } from "../errors.js";
import { INCIDENT_ID, type IncidentInput, type IncidentStore } from "../../engine/incidents.js";
import type { SharedState } from "../../engine/shared-state.js";
import type { Logger } from "../../common/logger.js";
import { refusal } from "./policies.js";

export interface IncidentRouteDeps {
  readonly incidents: IncidentStore;
  /** Writes go to the shared state, so every replica sees them. */
  readonly state: SharedState;
  readonly log: Logger;
}

const MAX_BODY = 16 * 1024;
const BOUNDS = { maxDepth: 4, maxStringBytes: MAX_BODY, maxItems: 16, maxValuesPerItem: 64 };
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

type Parsed = { ok: true; input: IncidentInput } | { ok: false; path: string; message: string };

function parseInput(v: unknown, nowMs: number): Parsed {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { ok: false, path: "$", message: "expected an object" };
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== "description" && k !== "expires_at" && k !== "ttl_seconds") return { ok: false, path: `$.${k}`, message: "unknown field (allowed: description, expires_at, ttl_seconds)" };
  }
  const input: IncidentInput = {};
  if (o.description !== undefined && o.description !== null) {
    if (typeof o.description !== "string" || o.description.length > 1024 || unstorableText(o.description) !== null) {
      return { ok: false, path: "$.description", message: "expected a string of at most 1024 characters, without NUL or unpaired surrogates" };
    }
    input.description = o.description;
  }
  if (o.expires_at !== undefined && o.ttl_seconds !== undefined) return { ok: false, path: "$.ttl_seconds", message: "give expires_at or ttl_seconds, not both" };
  if (o.expires_at !== undefined) {
    if (o.expires_at === null) input.expires_at = null;
    else {
      if (typeof o.expires_at !== "string" || !RFC3339.test(o.expires_at) || Number.isNaN(Date.parse(o.expires_at))) {
        return { ok: false, path: "$.expires_at", message: 'expected an RFC 3339 time such as "2026-02-23T18:00:00Z", or null' };
      }
      const ms = Date.parse(o.expires_at);
      if (ms <= nowMs) return { ok: false, path: "$.expires_at", message: "is in the past" };
      input.expires_at = new Date(ms).toISOString();
    }
  }
  if (o.ttl_seconds !== undefined) {
    const t = o.ttl_seconds;
    if (typeof t !== "number" || !Number.isInteger(t) || t <= 0 || t > 366 * 86400) return { ok: false, path: "$.ttl_seconds", message: "expected a whole number of seconds between 1 and 31622400" };
    input.expires_at = new Date(nowMs + t * 1000).toISOString();
  }
  return { ok: true, input };
}

export function incidentRoutes(deps: IncidentRouteDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const { incidents } = deps;

  app.get("/v1/incidents", (c) => {
    const { active, expired } = incidents.list();
    return c.json({ incidents: active, expired });
  });

  app.get("/v1/incidents/:id", (c) => {
    const inc = incidents.get(c.req.param("id"));
    if (!inc) return errorResponse(c, 404, { code: "incident_not_found", message: `no incident "${c.req.param("id")}"` });
    return c.json({ incident: inc, active: incidents.isActive(inc.id) });
  });

  app.put("/v1/incidents/:id", async (c) => {
    const id = c.req.param("id");
    if (!INCIDENT_ID.test(id)) return errorResponse(c, 400, { code: "invalid_id", message: "incident ids are 1-128 characters of letters, digits, '.', '_', ':' and '-', starting with a letter or digit", path: "id" });
    const body = await readBodyBytes(c, MAX_BODY);
    if (!body.ok) return bodyErrorResponse(c, body);
    let value: unknown = {};
    // The body is optional; when there is one, it is JSON.
    if (body.bytes.some((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09)) {
      const json = requireJsonType(c) ?? parseJsonBytes(body.bytes, BOUNDS);
      if (!json.ok) return bodyErrorResponse(c, json);
      value = json.value;
    }
    const now = Date.now();
    const parsed = parseInput(value, now);
    if (!parsed.ok) return errorResponse(c, 400, { code: "invalid_request", message: `${parsed.path}: ${parsed.message}`, path: parsed.path });
    const r = await deps.state.putIncident(id, parsed.input, c.get("caller"));
    if (!r.ok) return refusal(c, r);
    deps.log.info(r.created ? "incident declared" : "incident updated", { incident: id, expires_at: r.incident.expires_at, caller: c.get("caller"), request_id: c.get("requestId") });
    return c.json({ incident: r.incident, active: incidents.isActive(id) }, r.created ? 201 : 200);
  });

  app.delete("/v1/incidents/:id", async (c) => {
    const id = c.req.param("id");
    if (!INCIDENT_ID.test(id)) return errorResponse(c, 404, { code: "incident_not_found", message: "no such incident" });
    const r = await deps.state.closeIncident(id, c.get("caller"));
    if (!r.ok) return refusal(c, r);
    deps.log.info("incident closed", { incident: id, caller: c.get("caller"), request_id: c.get("requestId") });
    return c.json({ deleted: id });
  });

  return app;
}
