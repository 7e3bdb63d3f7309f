// `zt serve` as a child process: configuration errors, the generated admin token, and a
// clean shutdown on SIGTERM/SIGINT (in-flight requests finish, the audit trail is flushed).
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { auditRoutes } from "../../host/http/routes/audit.js";
import { POLICIES_DIR } from "../support/seed.js";
import { call, type DecisionBody, svc } from "../http/harness.js";
import { type ServeProcess, untilListening, watchServe } from "./serve-process.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = 'import("./host/cli/serve.ts").then((m) => m.serveCommand(process.argv.slice(1))).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 4; })';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Served {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  exit: Promise<number | null>;
  api: string;
  health: string;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "zt-serve-"));
  chmodSync(d, 0o711);
  dirs.push(d);
  return d;
}

function launch(dir: string, env: Record<string, string>, args: string[] = []): ServeProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY, "--", ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ZT_POLICY_PATH: join(dir, "policies"), ZT_DATA_DIR: join(dir, "data"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return watchServe(child);
}

async function serve(dir: string, env: Record<string, string> = {}): Promise<Served> {
  return untilListening(launch(dir, env));
}

function withPolicies(): string {
  const dir = tempDir();
  mkdirSync(join(dir, "policies"));
  cpSync(POLICIES_DIR, join(dir, "policies"), { recursive: true });
  return dir;
}

describe("zt serve", () => {
  it("refuses bad configuration with exit code 2", async () => {
    const l = launch(withPolicies(), { ZT_MODE: "sometimes", ZT_PORT: "99999" });
    expect(await l.exit).toBe(2);
    expect(l.stderr()).toContain('ZT_MODE="sometimes": expected one of enforce, observe');
    expect(l.stderr()).toContain("ZT_PORT=99999: must be between 0 and 65535");
    const extra = launch(withPolicies(), {}, ["--port", "1"]);
    expect(await extra.exit).toBe(2);
  });

  it("refuses invalid policies with exit code 1 and every file:line:col", async () => {
    const dir = withPolicies();
    writeFileSync(join(dir, "policies", "bad.yaml"), "apiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata:\n  name: Bad\nspec:\n  rules: []\n");
    const l = launch(dir, { ZT_ADMIN_TOKEN: "a-long-enough-admin-token" });
    expect(await l.exit).toBe(1);
    expect(l.stderr()).toMatch(new RegExp(`${join(dir, "policies", "bad.yaml").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:4:\\d+: metadata.name "Bad" is invalid`));
  });

  it("generates a private admin token, serves, and drains on SIGTERM with the audit trail flushed", async () => {
    const dir = withPolicies();
    const s = await serve(dir);
    const tokenFile = join(dir, "data", "admin-token");
    expect(s.stderr()).toContain(`admin token generated and stored in ${tokenFile} (mode 0600)`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    // No identity settings: plain HTTP on loopback, said loudly.
    expect(s.stderr()).toContain("WARNING: ZT IS SERVING PLAIN HTTP WITHOUT AUTHENTICATION");
    const token = readFileSync(tokenFile, "utf8").trim();
    expect((await call(s.api, "PUT", "/v1/incidents/INC-1", { body: {}, token })).status).toBe(201);
    expect((await call(s.api, "PUT", "/v1/incidents/INC-2", { body: {} })).status).toBe(401);
    expect((await call(s.health, "GET", "/healthz")).status).toBe(200);

    const decided = await call<DecisionBody>(s.api, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
    expect(decided.status).toBe(200);
    // Every line on stdout is a JSON log line; responses carry request ids.
    expect(decided.headers.get("x-request-id")).toBeTruthy();

    // A request still sending its body when SIGTERM arrives must be answered.
    const body = JSON.stringify(svc("iam", "redis", 6379));
    const slow = new ReadableStream<Uint8Array>({
      async start(ctrl) {
        ctrl.enqueue(new TextEncoder().encode(body.slice(0, 20)));
        await new Promise((r) => setTimeout(r, 400));
        ctrl.enqueue(new TextEncoder().encode(body.slice(20)));
        ctrl.close();
      },
    });
    const inflight = fetch(s.api + "/v1/evaluate", { method: "POST", body: slow, headers: { "content-type": "application/json" }, duplex: "half" } as RequestInit);
    await new Promise((r) => setTimeout(r, 100));
    s.child.kill("SIGTERM");
    const res = await inflight;
    expect(res.status).toBe(200);
    const last = (await res.json()) as DecisionBody;
    expect(last.decision).toBe("ALLOW");
    expect(await s.exit, s.stderr() + s.stdout.slice(-5).join("\n")).toBe(0);
    const msgs = s.stdout.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toContain("shutdown complete");

    // Both decisions are in PostgreSQL after the process is gone.
    const audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data") }));
    try {
      const app = auditRoutes(audit.query, audit.sink);
      const r = await app.request("/v1/audit?limit=100");
      const ids = ((await r.json()) as { records: Array<{ decision_id: string }> }).records.map((x) => x.decision_id);
      expect(ids).toContain(decided.body.decision_id);
      expect(ids).toContain(last.decision_id);
    } finally {
      await audit.close();
    }
  });

  it("stops on SIGINT too, keeping the stored token", async () => {
    const dir = withPolicies();
    const first = await serve(dir);
    first.child.kill("SIGINT");
    expect(await first.exit, first.stderr() + first.stdout.slice(-5).join("\n")).toBe(0);
    const token = readFileSync(join(dir, "data", "admin-token"), "utf8").trim();
    const second = await serve(dir);
    expect(second.stderr()).not.toContain("generated");
    expect((await call(second.api, "PUT", "/v1/incidents/INC-3", { body: {}, token })).status).toBe(201);
    second.child.kill("SIGINT");
    expect(await second.exit, second.stderr() + second.stdout.slice(-5).join("\n")).toBe(0);
  });
});
