// GET/PUT /v1/rollout: the shared rollout settings (global mode, per-destination modes,
// canaries) and how this replica applies them; GET /v1/replicas: which replica serves what.
// PUT takes If-Match with the settings' ETag ("rollout-<revision>"). Who may: route-identity.ts.
import { Hono } from "hono";
import { unstorableText } from "../../audit/storable-text.js";
import type { Logger } from "../../common/logger.js";
import { parseRolloutInput } from "../../engine/rollout.js";
import type { SharedState } from "../../engine/shared-state.js";
import type { RolloutSettings } from "../../store/types.js";
import { readBodyText } from "../body.js";
import type { EngineEnv } from "../context.js";
import { errorResponse } from "../errors.js";
import { refusal } from "./policies.js";

export interface RolloutRouteDeps {
  readonly state: SharedState;
  readonly log: Logger;
}

const MAX_BODY = 256 * 1024;

function etag(s: RolloutSettings): string {
  return `"rollout-${s.rev}"`;
}

export function rolloutRoutes(deps: RolloutRouteDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();
  const { state, log } = deps;

  const view = (): Record<string, unknown> => {
    const s = state.rollout.current();
    return {
      settings: { revision: s.rev, mode: s.mode, destinations: s.destinations, canary: s.canary, author: s.author, message: s.message, updated_at: s.at },
      replica: state.rollout.replicaId,
      effective_mode: state.rollout.global(),
      live_replicas: state.rollout.liveReplicas(),
      canary: state.rollout.canaryAssignments(),
    };
  };

  app.get("/v1/rollout", (c) => {
    c.header("etag", etag(state.rollout.current()));
    return c.json(view());
  });

  app.put("/v1/rollout", async (c) => {
    const im = c.req.header("if-match");
    let ifMatchRev: number | null = null;
    if (im !== undefined) {
      const m = /^"?rollout-(\d{1,15})"?$/.exec(im.trim());
      if (!m) return errorResponse(c, 400, { code: "invalid_if_match", message: 'If-Match must be the settings\' ETag ("rollout-<revision>")' });
      ifMatchRev = Number(m[1]);
    }
    const message = c.req.header("x-zt-message") ?? null;
    if (message !== null && (message.length > 1024 || unstorableText(message) !== null)) return errorResponse(c, 400, { code: "invalid_message", message: "X-ZT-Message must be at most 1024 characters of text" });
    const body = await readBodyText(c, MAX_BODY);
    if (!body.ok) return errorResponse(c, body.status, { code: body.code, message: body.message, path: "$" });
    let json: unknown;
    try {
      json = JSON.parse(body.text);
    } catch (e) {
      return errorResponse(c, 400, { code: "invalid_json", message: `body is not valid JSON: ${(e as Error).message}`, path: "$" });
    }
    const input = parseRolloutInput(json);
    if (!input.ok) return errorResponse(c, 400, { code: "invalid_request", message: `${input.path}: ${input.message}`, path: input.path });
    const r = await state.putRollout(input.value, ifMatchRev, c.get("caller"), message);
    if (!r.ok) {
      if (r.code === "rollout_changed") {
        c.header("etag", etag(r.settings));
        return errorResponse(c, 412, { code: "precondition_failed", message: r.message });
      }
      return refusal(c, r);
    }
    log.info("rollout settings written", { revision: r.settings.rev, mode: r.settings.mode, destinations: r.settings.destinations.length, canary: r.settings.canary, caller: c.get("caller"), request_id: c.get("requestId") });
    c.header("etag", etag(r.settings));
    return c.json(view());
  });

  app.get("/v1/replicas", async (c) => {
    const view = await state.replicaView();
    return "ok" in view ? refusal(c, view) : c.json(view);
  });

  return app;
}
