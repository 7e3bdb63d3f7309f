// `zt serve` as a child process with its identity from the environment: mTLS with the SVID a
// SPIRE agent streams (health says 503 until it arrives), and the refusals of plaintext mode.
import "reflect-metadata";
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { startFakeAgent, svidMessage } from "../identity/agent-server.js";
import { clientAgent, request } from "../identity/harness.js";
import { createCa, issueSvid } from "../identity/pki.js";
import { POLICIES_DIR } from "../support/seed.js";
import { call, H } from "../http/harness.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = 'import("./host/cli/serve.ts").then((m) => m.serveCommand(process.argv.slice(1))).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 4; })';
const ZT_ID = H + "zt";
const SIDECAR = "spiffe://hanzo.ai/hanzo-k8s/istio/ingress";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function workDir(): string {
  const d = mkdtempSync(join(tmpdir(), "zt-serve-id-"));
  chmodSync(d, 0o711);
  mkdirSync(join(d, "policies"));
  cpSync(POLICIES_DIR, join(d, "policies"), { recursive: true });
  dirs.push(d);
  return d;
}

interface Child {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
  /** Resolves with the first JSON log line whose msg is `msg` (rejects if the process exits first). */
  line(msg: string): Promise<Record<string, string>>;
}

function launch(dir: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY, "--"], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ZT_POLICY_PATH: join(dir, "policies"), ZT_DATA_DIR: join(dir, "data"), ZT_ADMIN_TOKEN: "a-long-enough-admin-token", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Array<Record<string, string>> = [];
  const waiters: Array<{ msg: string; resolve: (l: Record<string, string>) => void }> = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const l = JSON.parse(buf.slice(0, i)) as Record<string, string>;
      buf = buf.slice(i + 1);
      lines.push(l);
      for (const w of waiters.filter((x) => x.msg === l["msg"])) w.resolve(l);
    }
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  return {
    child,
    stderr: () => err,
    exit,
    line(msg: string): Promise<Record<string, string>> {
      const seen = lines.find((l) => l["msg"] === msg);
      if (seen) return Promise.resolve(seen);
      const found = new Promise<Record<string, string>>((resolve) => waiters.push({ msg, resolve }));
      return Promise.race([found, exit.then((c) => Promise.reject(new Error(`zt serve exited ${c} before "${msg}": ${err}`)))]);
    },
  };
}

describe("zt serve with an identity", () => {
  it("refuses plain HTTP on a non-loopback ZT_HOST, and SPIFFE ID lists without mTLS (exit 2)", async () => {
    const open = launch(workDir(), { ZT_HOST: "0.0.0.0" });
    expect(await open.exit).toBe(2);
    expect(open.stderr()).toContain('refusing to serve plain HTTP on "0.0.0.0"');
    const lists = launch(workDir(), { ZT_TRUSTED_EVALUATORS: SIDECAR });
    expect(await lists.exit).toBe(2);
    expect(lists.stderr()).toContain("ZT_TRUSTED_EVALUATORS/ZT_ADMIN_SPIFFE_IDS need mTLS");
    const half = launch(workDir(), { ZT_TLS_CERT: "/nonexistent/tls.crt" });
    expect(await half.exit).toBe(2);
    expect(half.stderr()).toContain("missing: ZT_TLS_KEY, ZT_TLS_BUNDLE");
  });

  it("with ZT_SPIRE_SOCKET: health is 503 until the SVID arrives, then the API serves mTLS only", async () => {
    const dir = workDir();
    const root = await createCa({ trustDomain: "hanzo.ai" });
    // The agent knows no SVID for the engine yet (a workload registration not yet synced).
    const spire = await startFakeAgent(join(dir, "agent.sock"), null);
    const s = launch(dir, { ZT_SPIRE_SOCKET: `unix://${spire.socketPath}`, ZT_TRUSTED_EVALUATORS: SIDECAR });
    try {
      const health = (await s.line("health listening"))["health"]!;
      await s.line("waiting for the engine's X.509-SVID from the SPIRE agent; the API port opens once it arrives");
      const waiting = await call<{ status: string; reason: string; identity: { mode: string; ready: boolean } }>(health, "GET", "/healthz");
      expect(waiting.status).toBe(503);
      expect(waiting.body.reason).toContain("no serving SVID yet (spire)");
      expect(waiting.body.identity).toMatchObject({ mode: "spire", ready: false });
      // The health port is plain HTTP: its details name variables, not the host's paths.
      expect(JSON.stringify(waiting.body)).not.toContain(dir);

      spire.push({ svids: [svidMessage(ZT_ID, await issueSvid(root, ZT_ID), [root])], crl: [], federated_bundles: {} });
      const listening = await s.line("zt engine listening");
      expect(listening["api"]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(listening["tls"]).toBe("mtls");
      const port = Number(new URL(listening["api"]!).port);
      expect((await call(health, "GET", "/healthz")).status).toBe(200);

      const gw = await issueSvid(root, H + "gateway");
      const r = await request(port, clientAgent(root.pem, ZT_ID, { certPem: gw.certPem, keyPem: gw.keyPem }, false), "POST", "/v1/evaluate", { source: { spiffe_id: H + "gateway" }, destination: { spiffe_id: H + "postgres", port: 5432 } });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ decision: "ALLOW" });
      const sidecar = await issueSvid(root, SIDECAR);
      const other = await request(port, clientAgent(root.pem, ZT_ID, { certPem: sidecar.certPem, keyPem: sidecar.keyPem }, false), "POST", "/v1/evaluate", { source: { spiffe_id: H + "chat" }, destination: { spiffe_id: H + "postgres", port: 5432 } });
      expect(other.body).toMatchObject({ decision: "DENY", reason: "default_deny" });
      const anonymous = await request(port, clientAgent(root.pem, ZT_ID, {}, false), "GET", "/v1/policies");
      expect(anonymous).toMatchObject({ status: 401, body: { error: { code: "invalid_client_svid", reason: "no_client_certificate" } } });
      // The log names the peer: once for the connection, once for each request it made.
      expect(await s.line("client certificate is not a valid X.509-SVID")).toMatchObject({ component: "identity", code: "no_client_certificate", remote: "127.0.0.1" });
      expect(await s.line("request refused")).toMatchObject({ path: "/v1/policies", code: "invalid_client_svid", reason: "no_client_certificate", rule: "reader", remote: "127.0.0.1" });

      s.child.kill("SIGTERM");
      expect(await s.exit, s.stderr()).toBe(0);
    } finally {
      if (s.child.exitCode === null) s.child.kill("SIGKILL");
      await spire.close();
    }
  });

  it("stops cleanly on SIGTERM while still waiting for its SVID", async () => {
    const dir = workDir();
    const spire = await startFakeAgent(join(dir, "agent.sock"), null);
    const s = launch(dir, { ZT_SPIRE_SOCKET: spire.socketPath });
    try {
      await s.line("health listening");
      s.child.kill("SIGTERM");
      expect(await s.exit, s.stderr()).toBe(0);
      await s.line("signal received before the first SVID arrived; stopping");
    } finally {
      if (s.child.exitCode === null) s.child.kill("SIGKILL");
      await spire.close();
    }
  });
});
