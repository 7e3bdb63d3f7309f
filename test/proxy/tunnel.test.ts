// tunnel/ and the CLI: real clients through `zt connect` (real processes of the built CLI): psql to
// a real PostgreSQL (the audit trail's embedded server) and ssh to a real sshd, each connection one
// decision of the seed's production-access policy: developer cannot open the postgres tunnel, sre
// can, oncall only with MFA (stepped up from the CLI) and an active incident. Byte counts and
// duration are recorded when a tunnel closes. `zt kubeconfig` and its credential plugin.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireProgram } from "../support/programs.js";
import { audited, CONSOLE_ID, CookieJar, freePort, type ProxyHarness, proxyRequest, startProxyHarness } from "./harness.js";
import { browse } from "./login-flow.js";
import { startSshd, type Sshd } from "./sshd.js";

const CLI = "dist/host/cli/main.js";
let h: ProxyHarness;
let sshd: Sshd;
let dir: string;
let caFile: string;
let tokenFile: string;

beforeAll(async () => {
  requireProgram("psql");
  requireProgram("ssh");
  dir = mkdtempSync(join(tmpdir(), `zt-proxy-tunnel-${process.pid}-`));
  tokenFile = join(dir, "sa-token");
  writeFileSync(tokenFile, "service-account-token-123\n");
  sshd = await startSshd(await freePort());
  h = await startProxyHarness({
    routes: ({ pgPort, upstreamPort }) => `apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: k8s}
spec:
  from: https://k8s.zt.test
  service: redis
  to: https://127.0.0.1:${upstreamPort}
  upstream: {spiffeId: "${CONSOLE_ID}", bearerTokenFile: "${tokenFile}", impersonate: true}
---
apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: db}
spec: {from: "tcp+https://db.zt.test:5432", service: postgres, to: "tcp://127.0.0.1:${pgPort}", action: write}
---
apiVersion: zt.hanzo.ai/v1
kind: AccessRoute
metadata: {name: ssh}
spec: {from: "tcp+https://ssh.zt.test:22", service: redis, to: "tcp://127.0.0.1:${sshd.port}", action: write}
`,
  });
  caFile = join(dir, "web-ca.pem");
  writeFileSync(caFile, h.web.pem);
  await h.engine.state.putIncident("INC-9", { description: "tunnel test" }, "test");
});
afterAll(async () => {
  await h?.dispose();
  await sshd?.close();
});

/** Per operator: their own token cache (ZT_CONFIG_DIR) and their own browser. */
const operators = new Map<string, { configDir: string; jar: CookieJar }>();
function operator(user: string): { configDir: string; jar: CookieJar } {
  let o = operators.get(user);
  if (!o) {
    o = { configDir: mkdtempSync(join(dir, `${user}-`)), jar: new CookieJar() };
    operators.set(user, o);
  }
  return o;
}

function proxyArgs(): string[] {
  return ["--proxy", `127.0.0.1:${h.port}`, "--ca", caFile, "--no-browser"];
}

interface Running {
  readonly proc: ChildProcess;
  stderr: string;
  /** Resolves with the local port (listen mode), or rejects/ends with the exit code. */
  readonly listening: Promise<number>;
  readonly exited: Promise<number>;
}

/** `zt connect …` as the operator: sign-in URLs it prints are opened in the operator's browser. */
function zt(user: string, args: string[], otp?: string): Running {
  const o = operator(user);
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ZT_CONFIG_DIR: o.configDir }, stdio: ["pipe", "pipe", "pipe"] });
  const run = { proc, stderr: "" } as Running & { stderr: string };
  let listened!: (p: number) => void;
  const listening = new Promise<number>((r) => (listened = r));
  proc.stderr!.on("data", (d: Buffer) => {
    const text = d.toString();
    run.stderr += text;
    for (const line of text.split("\n")) {
      const url = /Sign in to the access proxy: (\S+)/.exec(line)?.[1];
      if (url) void browse(h, new URL(url), user, o.jar, otp).catch((e: unknown) => (run.stderr += `\n[browser] ${(e as Error).message}`));
      const port = /listening on [0-9.]+:(\d+)/.exec(line)?.[1];
      if (port) listened(Number(port));
    }
  });
  const exited = new Promise<number>((r) => proc.once("exit", (code) => r(code ?? -1)));
  return Object.assign(run, { listening, exited });
}

/** psql as a child process (asynchronous: the proxy it goes through runs in this process). */
function psql(port: number, sql: string): Promise<{ code: number | null; out: string; err: string }> {
  const su = new URL(h.audit.connections.superuser!);
  return run(requireProgram("psql"), ["-X", "-tA", "-h", "127.0.0.1", "-p", String(port), "-U", decodeURIComponent(su.username), "-d", "postgres", "-c", sql], {
    PGPASSWORD: decodeURIComponent(su.password),
    PGSSLMODE: "disable",
    PGCONNECT_TIMEOUT: "30",
  });
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("exit", (code) => resolve({ code, out: out.trim(), err }));
  });
}

async function stop(r: Running): Promise<number> {
  r.proc.kill("SIGTERM");
  return r.exited;
}

describe("psql through zt connect --listen", () => {
  it("sre opens the postgres tunnel: psql works, the token is cached 0600, the tunnel is audited with its bytes", async () => {
    const r = zt("sre", ["connect", "db.zt.test:5432", "--listen", "127.0.0.1:0", ...proxyArgs()]);
    const port = await Promise.race([r.listening, r.exited.then((c) => Promise.reject(new Error(`zt connect exited ${c}: ${r.stderr}`)))]);
    const q = await psql(port, "SELECT 6 * 7");
    expect(q.err).toBe("");
    expect(q.out).toBe("42");
    expect(statSync(join(operator("sre").configDir, "proxy-tokens.json")).mode & 0o777).toBe(0o600);
    expect(await stop(r)).toBe(0);
    // Each connection is one decision, recorded with what it carried when it closed.
    let rows: Array<{ decision_id: string; bytes_up: string; bytes_down: string; closed_at: Date | null; subject: string }> = [];
    for (;;) {
      rows = await h.sql`SELECT decision_id::text, bytes_up::text, bytes_down::text, closed_at, subject FROM zt_proxy.tunnels WHERE route = 'db' AND closed_at IS NOT NULL`;
      if (rows.length >= 2) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const withData = rows.find((x) => Number(x.bytes_down) > 0)!;
    expect(Number(withData.bytes_up)).toBeGreaterThan(0);
    expect(withData.subject).toBe("sre@hanzo.test");
    const rec = (await audited(h, [withData.decision_id])).get(withData.decision_id)!;
    expect(rec).toMatchObject({ decision: "ALLOW", operator: { subject: "sre@hanzo.test", roles: ["sre"] }, target: { service: "postgres", action: "write" }, caller: "proxy:db+tunnel+remote:127.0.0.1" });
    const metrics = await (await fetch(`${h.engine.healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/zt_proxy_tunnel_bytes_total\{route="db",direction="down"\} [1-9]/);
  });

  it("developer cannot: zt connect exits 3 with the reason, and nothing reaches PostgreSQL", async () => {
    const dev = zt("dev", ["connect", "db.zt.test:5432", ...proxyArgs()]);
    expect(await dev.exited).toBe(3);
    expect(dev.stderr).toMatch(/refused \(403 default_deny\)/);
  });

  it("oncall: steps up to MFA from the CLI, then needs an active incident", async () => {
    const noIncident = zt("oncall", ["connect", "db.zt.test:5432", ...proxyArgs()]);
    expect(await noIncident.exited).toBe(3);
    // Signed in, then asked for MFA: the CLI opened the step-up sign-in and retried.
    expect(noIncident.stderr).toMatch(/This needs multi-factor authentication/);
    expect(noIncident.stderr).toMatch(/refused \(403 condition_failed:requireIncident\)/);
    expect(h.idp.logins.filter((l) => l.user === "oncall").at(-1)).toEqual({ user: "oncall", otp: true });
    const r = zt("oncall", ["connect", "db.zt.test:5432", "--listen", "127.0.0.1:0", "--incident", "INC-9", ...proxyArgs()]);
    const port = await Promise.race([r.listening, r.exited.then((c) => Promise.reject(new Error(`exited ${c}: ${r.stderr}`)))]);
    expect((await psql(port, "SELECT current_setting('server_version_num')::int > 0")).out).toBe("t");
    await stop(r);
    // An incident that is not declared does not count.
    const closed = zt("oncall", ["connect", "db.zt.test:5432", "--incident", "INC-404", ...proxyArgs()]);
    expect(await closed.exited).toBe(3);
  });
});

describe("ssh through zt connect as ProxyCommand", () => {
  const ssh = (user: string, command: string) => {
    const proxyCommand = [process.execPath, join(process.cwd(), CLI), "connect", "ssh.zt.test:22", ...proxyArgs()].join(" ");
    const args = ["-F", "/dev/null", "-i", sshd.clientKey, "-o", `UserKnownHostsFile=${sshd.knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", `ProxyCommand=${proxyCommand}`, "-p", "22", "root@ssh.zt.test", command];
    return run(requireProgram("ssh"), args, { ZT_CONFIG_DIR: operator(user).configDir });
  };

  it("sre reaches the real sshd (token cached from the psql sign-in); developer does not", async () => {
    const ok = await ssh("sre", "echo through-the-proxy");
    expect(ok.err).toBe("");
    expect(ok.out).toBe("through-the-proxy");
    const denied = await ssh("dev", "echo nope");
    expect(denied.code).not.toBe(0);
    expect(denied.err).toMatch(/refused \(403 default_deny\)/);
  });
});

describe("tunnels are refused like requests", () => {
  it("a CONNECT without a token, to an unknown route, or with a bad incident", async () => {
    const { openTunnel, parseTarget } = await import("../../host/cli/proxy-client.js");
    const t = parseTarget("db.zt.test:5432", { proxy: `127.0.0.1:${h.port}`, ca: caFile });
    const none = await openTunnel(t, "nothing", null);
    expect(none.ok).toBe(false);
    if (!none.ok) expect(none.refusal).toMatchObject({ status: 401, code: "proxy_invalid_token:malformed_token" });
    const unknown = await openTunnel(parseTarget("db.zt.test:9999", { proxy: `127.0.0.1:${h.port}`, ca: caFile }), "x", null);
    if (!unknown.ok) expect(unknown.refusal).toMatchObject({ status: 404, code: "proxy_unknown_host" });
    const sreToken = JSON.parse((await import("node:fs")).readFileSync(join(operator("sre").configDir, "proxy-tokens.json"), "utf8"))[`127.0.0.1:${h.port}`].token as string;
    const bad = await openTunnel(t, sreToken, "bad incident!");
    if (!bad.ok) expect(bad.refusal).toMatchObject({ status: 400, code: "proxy_bad_incident" });
  });
});

describe("zt kubeconfig", () => {
  it("writes a kubeconfig whose exec credential is zt; the plugin's token reaches the API with impersonation", async () => {
    const out = await run(process.execPath, [CLI, "kubeconfig", "k8s.zt.test", "--proxy", `127.0.0.1:${h.port}`, "--ca", caFile]);
    expect(out.code).toBe(0);
    const kc = parse(out.out) as Record<string, unknown> & { users: Array<{ user: { exec: Record<string, unknown> } }> };
    expect(kc["current-context"]).toBe("k8s.zt.test");
    expect(kc.users[0]!.user.exec).toMatchObject({ apiVersion: "client.authentication.k8s.io/v1", command: "zt", args: ["kube-credential", "k8s.zt.test", "--proxy", `127.0.0.1:${h.port}`, "--ca", caFile] });
    const cred = await run(process.execPath, [CLI, "kube-credential", "k8s.zt.test", "--proxy", `127.0.0.1:${h.port}`, "--ca", caFile], { ZT_CONFIG_DIR: operator("sre").configDir });
    expect(cred.code).toBe(0);
    const ec = JSON.parse(cred.out) as { kind: string; status: { token: string; expirationTimestamp: string } };
    expect(ec.kind).toBe("ExecCredential");
    expect(ec.status.token).toMatch(/^ztp_/);
    // kubectl sends it as a bearer token; the API server gets the route's credential and the operator.
    const r = await proxyRequest(h, "k8s.zt.test", "/logs/api/v1/namespaces", { headers: { accept: "application/json", authorization: `Bearer ${ec.status.token}` } });
    expect(r.status).toBe(200);
    const seen = h.upstream.seen.at(-1)!;
    expect(seen.headers.authorization).toBe("Bearer service-account-token-123");
    expect(seen.headers["impersonate-user"]).toBe("sre@hanzo.test");
    expect(seen.headers["impersonate-group"]).toBe("sre");
  });
});
