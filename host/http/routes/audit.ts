// The audit trail's HTTP API. Who may call it is decided before any route runs (the identity
// gate, route-identity.ts: admin); every input is validated and a bad one is a 400 naming the JSON path.
import { Hono, type Context } from "hono";
import type { Sql } from "postgres";
import { buildGraph, graphToDot, parseGraphQuery } from "../../audit/graph.js";
import { parseAuditQuery, queryAudit } from "../../audit/query.js";
import { type AuditRecord, AuditUnavailableError } from "../../audit/record.js";
import { MAX_INGEST_RECORDS, validateIngestBody, type FieldError } from "../../audit/validate.js";
import type { ThreadedAuditSink } from "../../audit/threaded-sink.js";
import { readJsonBody } from "../body.js";
import { bodyErrorResponse } from "../errors.js";

/** How long POST /v1/audit/ingest waits for its records to be durable before answering 503. */
export const INGEST_DURABLE_TIMEOUT_MS = 5000;
export const INGEST_MAX_BYTES = 8 * 1024 * 1024;

function badRequest(c: Context, e: FieldError) {
  return c.json({ error: { code: "invalid_request", message: `${e.path}: ${e.message}`, path: e.path } }, 400);
}

function unavailable(c: Context, err: unknown) {
  const message = err instanceof Error ? err.message : String(err);
  return c.json({ error: { code: "audit_unavailable", message, path: null } }, 503);
}

export interface AuditRouteOptions {
  /** Records ingest accepted (durable): e.g. which policy versions sidecars decide with. */
  onIngest?: (records: readonly AuditRecord[]) => void;
}

export function auditRoutes(sql: Sql, writer: ThreadedAuditSink, opts: AuditRouteOptions = {}): Hono {
  const app = new Hono();

  app.get("/v1/audit", async (c) => {
    const q = parseAuditQuery(c.req.queries());
    if (!q.ok) return badRequest(c, q.error);
    try {
      return c.json(await queryAudit(sql, q.value));
    } catch (e) {
      return unavailable(c, e);
    }
  });

  app.get("/v1/graph", async (c) => {
    const q = parseGraphQuery(c.req.queries());
    if (!q.ok) return badRequest(c, q.error);
    try {
      const g = await buildGraph(sql, q.value);
      if (q.value.format === "dot") return c.body(graphToDot(g), 200, { "content-type": "text/vnd.graphviz; charset=utf-8" });
      return c.json(g);
    } catch (e) {
      return unavailable(c, e);
    }
  });

  // The checkpoint key's public half and the newest signed checkpoint: what an auditor or a
  // witness needs to check the trail (docs/audit.md, "Checkpoints").
  app.get("/v1/audit/checkpoint/key", (c) =>
    c.json({ algorithm: "Ed25519", key_id: writer.checkpointKey.keyId, public_key_pem: writer.checkpointKey.publicKeyPem }),
  );

  app.get("/v1/audit/checkpoint", (c) => {
    const latest = writer.checkpoints.latest;
    if (latest === null) return c.json({ error: { code: "no_checkpoint", message: "no checkpoint has been written yet", path: null } }, 404);
    return c.json(latest);
  });

  // {"records": [...]}: at most MAX_INGEST_RECORDS records of a few dozen values each, four deep.
  const ingestBounds = { maxDepth: 6, maxStringBytes: 64 * 1024, maxItems: 1, maxValuesPerItem: MAX_INGEST_RECORDS * 64 };
  app.post("/v1/audit/ingest", async (c) => {
    const json = await readJsonBody(c, INGEST_MAX_BYTES, ingestBounds);
    if (!json.ok) return bodyErrorResponse(c, json.code === "body_too_large" ? { ...json, code: "payload_too_large" } : json);
    const body = json.value;
    const v = validateIngestBody(body);
    if (!v.ok) return badRequest(c, v.error);
    try {
      // Backpressure as on /v1/evaluate: wait (bounded) for room rather than refuse a burst.
      const room = writer.admit(v.value.length, INGEST_DURABLE_TIMEOUT_MS);
      if (room !== null) await room;
      writer.appendMany(v.value);
      // Answer only once the records are durable, so a sidecar may forget them.
      await writer.flush(INGEST_DURABLE_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof AuditUnavailableError) return unavailable(c, e);
      throw e;
    }
    opts.onIngest?.(v.value);
    return c.json({ accepted: v.value.length });
  });

  return app;
}
