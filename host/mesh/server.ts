// The agent's HTTP listener: GET /metrics (read from the device at scrape time, so peer_up is
// exact to the scrape) and GET /healthz (200 while the interface is up and the last
// reconciliation did not fail, else 503 with the reasons).
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { MeshAgent } from "./agent.js";

export function createAgentApp(agent: MeshAgent): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    await agent.observe();
    const body = await agent.metrics.registry.metrics();
    return c.body(body, 200, { "content-type": agent.metrics.registry.contentType });
  });
  app.get("/healthz", async (c) => {
    const o = await agent.observe();
    const s = agent.state();
    const reasons: string[] = [];
    if (!o.interfaceUp) reasons.push("interface down");
    if (s.lastResult === "failed" || s.desired === null) reasons.push(s.lastError ?? "not configured");
    // A key file that does not match yet is a rotation in progress: reported, not unhealthy.
    const body = { ok: reasons.length === 0, reasons, key_matches: s.keyMatches, cluster: s.desired?.cluster ?? null, mesh: s.mesh?.name ?? null, peers: o.peers.map((p) => ({ cluster: p.cluster, up: p.up })) };
    return c.json(body, reasons.length === 0 ? 200 : 503);
  });
  return app;
}

export function listenAgent(app: Hono, host: string, port: number): Promise<{ server: Server; url: string }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname: host }) as Server;
    server.once("error", reject);
    server.once("listening", () => {
      server.off("error", reject);
      const a = server.address() as AddressInfo;
      resolve({ server, url: `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}` });
    });
  });
}
