// GET /metrics: the Prometheus text format (served on the API and the health port).
import { Hono } from "hono";
import type { EngineMetrics } from "../../metrics/metrics.js";

export function metricsRoute(metrics: EngineMetrics): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }));
  return app;
}
