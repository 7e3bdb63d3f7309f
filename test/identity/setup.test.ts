// setupIdentity from environment variables, served with Hono exactly as the engine would.
import "reflect-metadata";
import { describe, it, expect } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { Server as TlsServer } from "node:tls";
import { Registry } from "prom-client";
import { Hono } from "hono";
import { serve, type HttpBindings } from "@hono/node-server";
import { setupIdentity, callerLabel, IdentityConfigError } from "../../host/identity/index.js";
import { createCa, issueSvid } from "./pki.js";
import { startFakeAgent, svidMessage } from "./agent-server.js";
import { startJwksServer, signingKey, mint, ISSUER, AUDIENCE } from "./jwks-server.js";
import { clientAgent, request } from "./harness.js";

const ZT_ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt";
const OPERATOR = "spiffe://hanzo.ai/hanzo-k8s/zt/operator-proxy";

describe("setupIdentity", () => {
  it("wires SPIRE mTLS, admin SPIFFE IDs and the JWT verifier from the environment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-setup-"));
    const root = await createCa({ trustDomain: "hanzo.ai" });
    const agent = await startFakeAgent(join(dir, "agent.sock"), { svids: [svidMessage(ZT_ID, await issueSvid(root, ZT_ID), [root])], crl: [], federated_bundles: {} });
    const key = await signingKey("k");
    const jwks = await startJwksServer([key]);
    const registry = new Registry();
    const id = await setupIdentity(
      {
        ZT_SPIRE_SOCKET: `unix://${agent.socketPath}`,
        ZT_ADMIN_SPIFFE_IDS: OPERATOR,
        ZT_JWKS_URL: jwks.url.href,
        ZT_JWT_ISSUER: ISSUER,
        ZT_JWT_AUDIENCE: AUDIENCE,
      },
      { registry, adminToken: null },
    );
    const app = new Hono<{ Bindings: HttpBindings }>();
    app.get("/whoami", (c) => {
      const who = id.auth.identify(c.env.incoming);
      return who.ok ? c.json({ caller: callerLabel(who.caller), admin: id.auth.isAdmin(who.caller) }) : c.json({ error: who.code }, who.status);
    });
    const opts = id.serveOptions();
    expect(opts).not.toBeNull();
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1", ...opts! }) as unknown as TlsServer;
    if (!server.listening) await new Promise<void>((r) => server.once("listening", () => r()));
    const detach = id.attach(server);
    try {
      const op = await issueSvid(root, OPERATOR);
      const r = await request((server.address() as AddressInfo).port, clientAgent(root.pem, ZT_ID, { certPem: op.certPem, keyPem: op.keyPem }, false), "GET", "/whoami");
      expect(r.body).toEqual({ caller: `mtls:${OPERATOR}`, admin: true });
      expect(id.source.status()).toMatchObject({ mode: "spire", ready: true, spiffeId: ZT_ID });
      expect(await id.jwt!.verify(await mint(key))).toMatchObject({ ok: true, subject: "agent-7" });
      expect(await registry.getSingleMetric("zt_svid_rotations_total")).toBeDefined();
    } finally {
      detach();
      await new Promise<void>((r) => server.close(() => r()));
      await id.close();
      await agent.close();
      await jwks.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("plaintext without identity settings; every configuration problem at once otherwise", async () => {
    const id = await setupIdentity({}, { registry: new Registry(), adminToken: "t" });
    expect(id.serveOptions()).toBeNull();
    expect(id.jwt).toBeNull();
    expect(id.config.tls.mode).toBe("plaintext");
    await id.close();
    await expect(setupIdentity({ ZT_TLS_KEY: "/k", ZT_JWKS_URL: "ftp://x" }, { registry: new Registry(), adminToken: null })).rejects.toThrow(IdentityConfigError);
  });
});
