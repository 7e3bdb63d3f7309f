// Running the embedded server's programs: initdb once per cluster, then the postmaster in a
// process group of its own (a Ctrl-C in the terminal reaches zt, which drains and flushes the
// audit trail before it stops PostgreSQL). Readiness comes from postmaster.pid's status line,
// not from log text, so no locale or log setting can hide it. Start-up failures end as one
// line: the server's own FATAL message.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { chown, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Account } from "../common/path-access.js";
import { describeAccount, errnoText } from "../common/path-access.js";
import { binary, type PgBinaries, serverEnv } from "./embedded-binaries.js";
import { EmbeddedPostgresError, USE_EXTERNAL } from "./embedded-error.js";

const asAccount = (a: Account | null): { uid?: number; gid?: number } => (a ? { uid: a.uid, gid: a.gid } : {});
const who = (a: Account | null): string => (a ? describeAccount(a) : "this user");

/** The line of the server's output that says what went wrong (FATAL/PANIC/ERROR, else the last one). */
export function reasonLine(output: string): string {
  const lines = output.split("\n").map((l) => l.replace(/^\s*\d{4}-\d\d-\d\d [^ ]+ [A-Z]+ \[\d+\] /, "").trim()).filter(Boolean);
  return [...lines].reverse().find((l) => /\b(FATAL|PANIC|ERROR|error):/.test(l)) ?? lines.at(-1) ?? "no output";
}

/** initdb as `account` (null: this process's user), superuser password via a 0600 file the account owns, removed afterwards. */
export async function initCluster(b: PgBinaries, clusterDir: string, account: Account | null, superuser: { user: string; password: string }): Promise<void> {
  // Beside the cluster directory: a place the account can reach by construction.
  const pwfile = join(dirname(clusterDir), `.${basename(clusterDir)}.initdb-${process.pid}`);
  await writeFile(pwfile, superuser.password + "\n", { mode: 0o600 });
  try {
    if (account) await chown(pwfile, account.uid, account.gid);
    const args = [`--pgdata=${clusterDir}`, "--auth=scram-sha-256", `--username=${superuser.user}`, `--pwfile=${pwfile}`, "--encoding=UTF8", "--locale=C"];
    const { code, output, error } = await run(binary(b, "initdb"), args, account);
    if (error) throw new EmbeddedPostgresError(`cannot run ${binary(b, "initdb")} as ${who(account)}: ${errnoText(error)}; ${USE_EXTERNAL}`);
    if (code !== 0) throw new EmbeddedPostgresError(`initdb of ${clusterDir} failed as ${who(account)} (exit ${code}): ${reasonLine(output)}; remove ${clusterDir} if it is a failed earlier attempt, ${USE_EXTERNAL}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

function run(cmd: string, args: string[], account: Account | null): Promise<{ code: number | null; output: string; error: Error | null }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: serverEnv(), stdio: ["ignore", "pipe", "pipe"], ...asAccount(account) });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", (error) => resolve({ code: null, output, error }));
    child.once("close", (code) => resolve({ code, output, error: null }));
  });
}

export interface PidFile {
  pid: number;
  port: number;
  status: string;
}

export function readPidFile(clusterDir: string): PidFile | null {
  const file = join(clusterDir, "postmaster.pid");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  // Layout (PostgreSQL's pidfile.h): pid, data dir, start time, port, socket dir, listen address, shmem key, status.
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return null;
  return { pid, port, status: (lines[7] ?? "").trim() };
}

export function isPostmasterOf(pid: number, clusterDir: string): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmd.some((a) => a.endsWith("postgres")) && cmd.includes(clusterDir);
  } catch {
    return false;
  }
}

export function findRunningPostmaster(clusterDir: string): PidFile | null {
  const pf = readPidFile(clusterDir);
  if (!pf) return null;
  return isPostmasterOf(pf.pid, clusterDir) ? pf : null;
}

/** A pid file whose process is gone (or whose pid now belongs to something else) blocks start-up. */
export async function removeStalePidFile(clusterDir: string): Promise<void> {
  const pf = readPidFile(clusterDir);
  if (pf && !isPostmasterOf(pf.pid, clusterDir)) await rm(join(clusterDir, "postmaster.pid"), { force: true });
}

export interface StartResult {
  pid: number;
  /** Set when the server exited during start-up: its reason, and whether another port may help. */
  failed?: { reason: string; portInUse: boolean };
}

/**
 * Starts the postmaster on 127.0.0.1:`port` (no Unix socket) and resolves once postmaster.pid
 * says "ready", or once it has exited with its reason. Its log goes to `<cluster>/log/` through
 * PostgreSQL's own collector (rotated daily, a week kept); only start-up output passes through here.
 */
export function startPostmaster(b: PgBinaries, clusterDir: string, port: number, account: Account | null): Promise<StartResult> {
  const args = [
    "-D", clusterDir, "-p", String(port),
    "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=100",
    "-c", "logging_collector=on", "-c", "log_filename=postgresql-%a.log", "-c", "log_truncate_on_rotation=on", "-c", "log_rotation_age=1d", "-c", "log_rotation_size=0",
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(binary(b, "postgres"), args, { env: serverEnv(), stdio: ["ignore", "ignore", "pipe"], detached: true, ...asAccount(account) });
    let output = "";
    let settled = false;
    const onData = (d: Buffer): void => {
      output = (output + d.toString()).slice(-8192);
    };
    child.stderr.on("data", onData);
    const finish = (r: StartResult | Error): void => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      if (r instanceof Error) return reject(r);
      if (!r.failed) {
        // The server outlives this handle's interest in it: it no longer keeps the event loop alive.
        child.stderr.off("data", onData);
        child.stderr.destroy();
        child.unref();
      }
      resolve(r);
    };
    child.once("error", (e) => finish(new EmbeddedPostgresError(`cannot run ${binary(b, "postgres")} as ${who(account)}: ${errnoText(e)}; ${USE_EXTERNAL}`)));
    child.once("exit", (code, signal) => {
      // Let the last of its output arrive before reading the reason.
      setImmediate(() => {
        // Past the point where the collector took over, the reason is in the cluster's log.
        const said = /logging collector/.test(output) ? output + collectedLog(clusterDir) : output;
        const reason = `${reasonLine(said)} (exit ${code ?? signal})`;
        finish({ pid: -1, failed: { reason, portInUse: /could not (bind|create any TCP\/IP sockets)|address already in use/i.test(output) } });
      });
    });
    const poll = setInterval(() => {
      const pf = readPidFile(clusterDir);
      if (pf && pf.pid === child.pid && pf.status === "ready") finish({ pid: pf.pid });
    }, 25);
  });
}

/** The end of the newest file in `<cluster>/log/` (the collector's output). */
function collectedLog(clusterDir: string): string {
  const dir = join(clusterDir, "log");
  try {
    const newest = readdirSync(dir)
      .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t)[0];
    return newest ? "\n" + readFileSync(join(dir, newest.f), "utf8").slice(-8192) : "";
  } catch {
    return "";
  }
}

/** Stops a postmaster by pid ("fast" shutdown: SIGINT) and waits until it is gone; a no-op when it is not running. */
export async function stopByPid(pid: number, clusterDir: string): Promise<void> {
  if (!isPostmasterOf(pid, clusterDir)) return;
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return;
  }
  // A zombie child still answers kill(0) until it is reaped: its /proc cmdline is empty by then.
  while (isPostmasterOf(pid, clusterDir)) await new Promise((r) => setTimeout(r, 25));
}

export const clusterInitialised = (clusterDir: string): boolean => existsSync(join(clusterDir, "PG_VERSION"));
