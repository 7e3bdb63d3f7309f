// `zt proxy` and `zt serve` with the access proxy, as child processes (the built CLI): every
// configuration problem at once with exit 2, no proxy on a plain-HTTP API listener, and the
// proxy alone serving its route hosts over HTTPS, then stopping cleanly on SIGTERM.
import "reflect-metadata";
import { spawn } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createCa, issueSvid } from "../identity/pki.js";
import { POLICIES_DIR } from "../support/seed.js";
import { untilListening, watchServe } from "./serve-process.js";

const CLI = "dist/host/cli/main.js";
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function setup(): Promise<{ dir: string; env: Record<string, string>; caPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), "zt-cli-proxy-"));
  chmodSync(dir, 0o711);
  dirs.push(dir);
  mkdirSync(join(dir, "policies"));
  cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
  mkdirSync(join(dir, "routes"));
  writeFileSync(join(dir, "routes", "r.yaml"), "apiVersion: zt.hanzo.ai/v1\nkind: AccessRoute\nmetadata: {name: app}\nspec: {from: 'https://app.zt.test', service: gateway, to: 'https://127.0.0.1:9', upstream: {credential: none}}\n");
  const web = await createCa({ trustDomain: "web.test" });
  const cert = await issueSvid(web, null, { dns: ["*.zt.test"] });
  writeFileSync(join(dir, "public.pem"), cert.certPem);
  writeFileSync(join(dir, "public.key"), cert.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, "secret"), "a-client-secret\n", { mode: 0o600 });
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/root",
    ZT_HOST: "127.0.0.1",
    ZT_PORT: "0",
    ZT_HEALTH_PORT: "0",
    ZT_POLICY_PATH: join(dir, "policies"),
    ZT_DATA_DIR: join(dir, "data"),
    ZT_PROXY_ROUTES: join(dir, "routes"),
    // Never reached here: nobody signs in.
    ZT_OIDC_ISSUER: "https://127.0.0.1:9",
    ZT_OIDC_CLIENT_ID: "zt-proxy",
    ZT_OIDC_CLIENT_SECRET_FILE: join(dir, "secret"),
    ZT_PROXY_TLS_CERT: join(dir, "public.pem"),
    ZT_PROXY_TLS_KEY: join(dir, "public.key"),
  };
  return { dir, env, caPem: web.pem };
}

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("exit", (code) => resolve({ code, err }));
  });
}

function get(port: number, path: string, caPem: string, host = "app.zt.test"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: "127.0.0.1", port, path, servername: "app.zt.test", ca: caPem, headers: { host: `${host}:${port}`, accept: "application/json" } }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

describe("zt proxy / zt serve with the proxy", () => {
  it("reports every configuration problem at once (exit 2), never a secret", async () => {
    const { env } = await setup();
    const r = await run(["proxy"], { ...env, ZT_OIDC_ISSUER: "http://idp.test", ZT_OIDC_CLIENT_ID: "", ZT_PROXY_TLS_KEY: "/nonexistent/key.pem", ZT_PROXY_SESSION_MAX_SEC: "forever" });
    expect(r.code).toBe(2);
    for (const v of ["ZT_OIDC_ISSUER", "ZT_OIDC_CLIENT_ID is required", "ZT_PROXY_TLS_KEY", "ZT_PROXY_SESSION_MAX_SEC"]) expect(r.err).toContain(v);
    expect(r.err).not.toContain("a-client-secret");
    const none = await run(["proxy"], { ...env, ZT_PROXY_ROUTES: "" });
    expect(none.code).toBe(2);
    expect(none.err).toContain("ZT_PROXY_ROUTES is required");
  });

  it("zt serve refuses the console's proxy sign-in without the proxy", async () => {
    const { env } = await setup();
    const r = await run(["serve"], { ...env, ZT_PROXY_ROUTES: "", ZT_CONSOLE_PROXY_AUDIENCE: "zt-engine.zt-system.svc" });
    expect(r.code).toBe(2);
    expect(r.err).toContain("ZT_CONSOLE_PROXY_AUDIENCE");
    expect(r.err).toContain("ZT_PROXY_ROUTES");
  });

  it("zt serve will not put the proxy on a plain-HTTP API listener", async () => {
    const { env } = await setup();
    const r = await run(["serve"], env);
    expect(r.code).toBe(2);
    expect(r.err).toContain("plain HTTP without an SVID");
  });

  it("zt proxy serves its route hosts over HTTPS alone, and stops cleanly on SIGTERM", async () => {
    const { env, caPem } = await setup();
    const p = await untilListening(watchServe(spawn(process.execPath, [CLI, "proxy"], { env, stdio: ["ignore", "pipe", "pipe"] })));
    const port = Number(new URL(p.api).port);
    // A script without a session: 401 JSON with the login URL.
    const r = await get(port, "/dashboards", caPem);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: "login_required", login_url: "/.zt/login?rd=%2Fdashboards" } });
    expect((await get(port, "/.zt/jwks.json", caPem)).status).toBe(200);
    // No API behind it: the engine's paths are just unknown to the proxy.
    const api = await get(port, "/v1/policies", caPem);
    expect(api.status).toBe(401);
    // Alone, every request is the proxy's: an unknown host is refused by it (404, audited).
    const unknown = await get(port, "/", caPem, "other.zt.test");
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: { code: "proxy_unknown_host" } });
    const health = await fetch(`${p.health}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${p.health}/metrics`)).text();
    expect(metrics).toMatch(/zt_proxy_requests_total\{route="app",outcome="login_required"\} 2/);
    p.child.kill("SIGTERM");
    expect(await p.exit).toBe(0);
  });
});
