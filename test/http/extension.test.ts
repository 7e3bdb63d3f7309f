// Extensions (host/http/extension.ts): how the other front rooms join the API listener.
import { request } from "node:http";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineEnv } from "../../host/http/context.js";
import type { EngineCore } from "../../host/http/extension.js";
import { callerOf } from "../../host/http/identity-gate.js";
import { MissingIdentityRule, ROUTE_IDENTITY } from "../../host/http/route-identity.js";
import { startTestEngine, type TestEngine, TOKEN } from "./harness.js";

/** fetch() will not send another Host header; node:http will. */
function getWithHost(url: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d)).on("end", () => resolve(body));
    }).on("error", reject).end();
  });
}

describe("engine extensions", () => {
  let engine: TestEngine;
  let core: EngineCore | null = null;
  let serverSeen = false;
  let closed = 0;

  beforeAll(async () => {
    engine = await startTestEngine({
      engine: {
        // An extension's routes get their lines in the one table, like the API's own.
        routeIdentity: { ...ROUTE_IDENTITY, "GET /x/open": "svid", "GET /x/admin": "admin", "CLAIMED host": "own" },
        extensions: [
          (c) => {
            core = c;
            const app = new Hono<EngineEnv>();
            app.get("/x/open", (ctx) => ctx.json({ version: c.store.current()?.version ?? null }));
            app.get("/x/admin", (ctx) => ctx.json({ caller: ctx.get("caller") }));
            return { name: "paths", app, onServer: () => (serverSeen = true), close: async () => void closed++ };
          },
          () => {
            const app = new Hono<EngineEnv>();
            app.all("*", (ctx) => ctx.text(`claimed ${ctx.req.path} by ${callerOf(ctx).transport}`));
            return { name: "host", app, claims: (req) => req.headers.get("host") === "claimed.test" };
          },
        ],
      },
    });
  });
  afterAll(async () => engine.dispose());

  it("gets the engine's core and the API server", () => {
    expect(core?.store).toBe(engine.store);
    expect(serverSeen).toBe(true);
  });

  it("serves its routes beside the API's, with the API's request ids", async () => {
    const r = await fetch(`${engine.url}/x/open`);
    expect(r.status).toBe(200);
    expect(r.headers.get("x-request-id")).toBeTruthy();
    expect(((await r.json()) as { version: string }).version).toBe(engine.store.current()?.version);
    expect((await fetch(`${engine.url}/v1/policies`)).status).toBe(200);
  });

  it("its routes get the identity their line in the table says", async () => {
    expect((await fetch(`${engine.url}/x/admin`)).status).toBe(401);
    const ok = await fetch(`${engine.url}/x/admin`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await ok.json()).toEqual({ caller: "plaintext:127.0.0.1+admin-token" });
  });

  it("takes whole requests it claims, API paths included, and no others; their caller comes from the connection", async () => {
    expect(await getWithHost(`${engine.url}/v1/policies`, "claimed.test")).toBe("claimed /v1/policies by plaintext");
    const api = await fetch(`${engine.url}/nothing-here`);
    expect(api.status).toBe(404);
  });

  it("keeps core.admin working as a re-check of the caller the gate found", async () => {
    expect(core?.admin).toBeTypeOf("function");
  });

  it("is closed with the engine", async () => {
    await engine.close();
    expect(closed).toBe(1);
  });
});

describe("an extension route without an identity rule", () => {
  it("stops the engine from starting, naming the route and where to add its line", async () => {
    const start = startTestEngine({
      engine: {
        extensions: [
          () => {
            const app = new Hono<EngineEnv>();
            app.get("/v1/forgotten", (ctx) => ctx.text("reachable by anyone?"));
            return { name: "forgetful", app };
          },
          () => ({ name: "claimer", app: new Hono<EngineEnv>(), claims: () => false }),
        ],
      },
    });
    const err = await start.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MissingIdentityRule);
    expect((err as MissingIdentityRule).missing).toEqual(["GET /v1/forgotten", "CLAIMED claimer"]);
    expect((err as Error).message).toContain("host/http/route-identity.ts");
  });
});
