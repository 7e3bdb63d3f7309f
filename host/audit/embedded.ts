// Embedded PostgreSQL for `zt serve` without ZT_AUDIT_DSN, and for the tests: the server
// binaries ship in an npm package (embedded-binaries.ts, imported lazily), so
// `npm install && npm start` needs nothing else. One cluster per data directory; a cluster left
// running by a killed process (kill -9 of its owner does not stop the postmaster) is adopted,
// not duplicated.
//
// As root (PostgreSQL refuses to run as root), the server runs as the system account
// `zt-postgres` from a root-owned copy of the binaries in ZT_AUDIT_EMBEDDED_DIR
// (/var/lib/zt-postgres). Its cluster stays in `<dataDir>/cluster` when that account can reach
// it; otherwise (a clone in /root, mode 0700) it lives in `<ZT_AUDIT_EMBEDDED_DIR>/clusters/<id>`,
// recorded in `<dataDir>/cluster-location`. Secrets stay in the data directory, 0600 root.
// docs/audit.md ("Running as root") says why.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { type Account, currentAccount, describeAccount, errnoText, firstBlocker, whyNot } from "../common/path-access.js";
import { accountOfUid, embeddedAccount } from "./embedded-account.js";
import { checkRunnable, locateBinaries, type PgBinaries, stageBinaries } from "./embedded-binaries.js";
import { EmbeddedPostgresError, USE_EXTERNAL } from "./embedded-error.js";
import { clusterInitialised, findRunningPostmaster, initCluster, readPidFile, removeStalePidFile, startPostmaster, stopByPid } from "./embedded-process.js";

export { EmbeddedPostgresError } from "./embedded-error.js";

/** Where, as root, the binaries (and clusters the server's account cannot reach in place) are staged. */
export const DEFAULT_EMBEDDED_DIR = "/var/lib/zt-postgres";
/** In the data directory: the absolute path of a cluster that lives outside it. */
const LOCATION_FILE = "cluster-location";

export interface EmbeddedPostgresOptions {
  /** Directory owned by ZT: holds `cluster/` (or `cluster-location`) and `superuser.json`. */
  dataDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** Root only: ZT_AUDIT_EMBEDDED_DIR (default /var/lib/zt-postgres). */
  embeddedDir?: string;
  /** Receives the server's lifecycle events. */
  logger?: (obj: Record<string, unknown>) => void;
}

export interface EmbeddedPostgresHandle {
  /** Superuser DSN (database `postgres`). */
  dsn: string;
  port: number;
  /** True when a postmaster left running by a killed process was adopted. */
  adopted: boolean;
  /** The PostgreSQL data directory (in the data directory, or staged outside it as root). */
  clusterDir: string;
  stop(): Promise<void>;
}

interface SuperuserFile {
  user: string;
  password: string;
}

const SUPERUSER = "zt_superuser";
const isRoot = (): boolean => process.getuid?.() === 0;

/** The cluster directory of a data directory, without creating anything. */
export function embeddedClusterDir(dataDir: string): string {
  const dir = resolve(dataDir);
  try {
    return readFileSync(join(dir, LOCATION_FILE), "utf8").trim();
  } catch {
    return join(dir, "cluster");
  }
}

/** True when the data directory has an initialised cluster (in place or staged). */
export function hasEmbeddedCluster(dataDir: string): boolean {
  return clusterInitialised(embeddedClusterDir(dataDir));
}

interface Placement {
  clusterDir: string;
  /** Who runs the server: null means this process's own user (not root). */
  account: Account | null;
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(opts.dataDir);
  const log = opts.logger ?? (() => undefined);
  const base = resolve(opts.embeddedDir || DEFAULT_EMBEDDED_DIR);

  await makeDataDir(dataDir);
  const su = await loadOrCreateSuperuser(join(dataDir, "superuser.json"));
  const place = await placeCluster(dataDir, base, log);

  const running = findRunningPostmaster(place.clusterDir);
  if (running) {
    const dsn = superuserDsn(su, running.port);
    if (await canConnect(dsn)) {
      log({ msg: "audit: adopted running embedded PostgreSQL", pid: running.pid, port: running.port, dir: place.clusterDir });
      return { dsn, port: running.port, adopted: true, clusterDir: place.clusterDir, stop: () => stopByPid(running.pid, place.clusterDir) };
    }
  }

  const binaries = await runnableBinaries(base, place.account);
  if (!clusterInitialised(place.clusterDir)) {
    // An initdb that died half-way leaves a non-empty directory initdb then refuses.
    await rm(place.clusterDir, { recursive: true, force: true });
    await makeClusterDir(place);
    await initCluster(binaries, place.clusterDir, place.account, su);
  }
  await removeStalePidFile(place.clusterDir);

  let reason = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = opts.port ?? (await freePort());
    const r = await startPostmaster(binaries, place.clusterDir, port, place.account);
    if (!r.failed) {
      log({ msg: "audit: embedded PostgreSQL started", port, pid: r.pid, dir: place.clusterDir, user: place.account?.name ?? currentAccount().name });
      return { dsn: superuserDsn(su, port), port, adopted: false, clusterDir: place.clusterDir, stop: () => stopByPid(r.pid, place.clusterDir) };
    }
    reason = r.failed.reason;
    // Only a picked port that someone took in the meantime is worth another try.
    if (opts.port !== undefined || !r.failed.portInUse) break;
  }
  const as = place.account ? ` as ${describeAccount(place.account)}` : "";
  throw new EmbeddedPostgresError(`the server in ${place.clusterDir} exited during start-up${as}: ${reason}; its log is in ${join(place.clusterDir, "log")}, ${USE_EXTERNAL}`);
}

async function makeDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    await writeFile(join(dataDir, ".probe"), "", { mode: 0o600 });
    await rm(join(dataDir, ".probe"));
  } catch (e) {
    const me = currentAccount();
    throw new EmbeddedPostgresError(`cannot create or write ${dataDir} as ${describeAccount(me)}: ${whyNot(dataDir, me, e)}; choose a ZT_DATA_DIR ${me.name} can write, ${USE_EXTERNAL}`);
  }
}

/**
 * Where the cluster lives and who runs it. Not root: in the data directory, as ourselves. Root:
 * an existing cluster stays where it is and runs as its owner; a new one goes in the data
 * directory (made 0711: traversable, not listable) when the dedicated account can reach it
 * there, else in the staging directory.
 */
async function placeCluster(dataDir: string, base: string, log: (o: Record<string, unknown>) => void): Promise<Placement> {
  const inPlace = join(dataDir, "cluster");
  if (!isRoot()) return { clusterDir: inPlace, account: null };
  if (existsSync(join(dataDir, LOCATION_FILE))) {
    const clusterDir = embeddedClusterDir(dataDir);
    if (!existsSync(clusterDir)) {
      throw new EmbeddedPostgresError(`the cluster ${clusterDir} named in ${join(dataDir, LOCATION_FILE)} is gone; restore it, or delete that file to start a new, empty audit trail, ${USE_EXTERNAL}`);
    }
    return { clusterDir, account: await ownerOf(clusterDir) };
  }
  if (existsSync(inPlace) && clusterInitialised(inPlace)) {
    await chmod(dataDir, 0o711);
    const account = await ownerOf(inPlace);
    const blocked = firstBlocker(inPlace, account);
    if (blocked) {
      throw new EmbeddedPostgresError(`${account.name} (the owner of the cluster ${inPlace}) cannot reach it: ${blocked.path} is ${blocked.detail}; make ${blocked.path} traversable (chmod o+x), move ZT_DATA_DIR back where it was, ${USE_EXTERNAL}`);
    }
    return { clusterDir: inPlace, account };
  }
  const account = await embeddedAccount();
  if (!firstBlocker(dataDir, account, false)) {
    await chmod(dataDir, 0o711);
    return { clusterDir: inPlace, account };
  }
  const clusters = join(base, "clusters");
  const clusterDir = join(clusters, randomBytes(8).toString("hex"));
  try {
    await mkdir(clusters, { recursive: true, mode: 0o711 });
    await writeFile(`${clusterDir}.data-dir`, dataDir + "\n", { mode: 0o644 });
  } catch (e) {
    throw new EmbeddedPostgresError(`cannot create ${clusters} as root (for a cluster ${account.name} can reach, since ${dataDir} is not reachable by it): ${whyNot(clusters, { name: "root", uid: 0, gid: 0 }, e)}; set ZT_AUDIT_EMBEDDED_DIR to a directory root can write, ${USE_EXTERNAL}`);
  }
  await writeFile(join(dataDir, LOCATION_FILE), clusterDir + "\n", { mode: 0o600 });
  log({ msg: "audit: embedded PostgreSQL cluster placed outside the data directory, which its account cannot reach", dir: clusterDir, user: account.name, dataDir });
  return { clusterDir, account };
}

async function ownerOf(clusterDir: string): Promise<Account> {
  const st = statSync(clusterDir);
  if (st.uid === 0) {
    throw new EmbeddedPostgresError(`the cluster ${clusterDir} is owned by root, and PostgreSQL refuses to run as root; give it to the server's account (chown -R zt-postgres: ${clusterDir}), ${USE_EXTERNAL}`);
  }
  return accountOfUid(st.uid, st.gid);
}

/** initdb needs an empty directory it owns; as root the account cannot create it itself. */
async function makeClusterDir(place: Placement): Promise<void> {
  try {
    await mkdir(place.clusterDir, { recursive: true, mode: 0o700 });
    if (place.account) await chown(place.clusterDir, place.account.uid, place.account.gid);
  } catch (e) {
    throw new EmbeddedPostgresError(`cannot create the cluster directory ${place.clusterDir}: ${errnoText(e)}; ${USE_EXTERNAL}`);
  }
}

async function runnableBinaries(base: string, account: Account | null): Promise<PgBinaries> {
  const found = await locateBinaries();
  const binaries = account ? await stageBinaries(found, base, account) : found;
  checkRunnable(binaries, account);
  return binaries;
}

/** For `npm test`'s setup: makes the binaries runnable (as root: the account and the staged copy) and proves it, or throws the one-line reason. */
export async function prepareEmbeddedPostgres(embeddedDir?: string): Promise<string> {
  const account = isRoot() ? await embeddedAccount() : null;
  const b = await runnableBinaries(resolve(embeddedDir || DEFAULT_EMBEDDED_DIR), account);
  return `PostgreSQL ${b.version} from ${b.root}, running as ${account ? describeAccount(account) : describeAccount(currentAccount())}`;
}

function superuserDsn(su: SuperuserFile, port: number): string {
  return `postgres://${encodeURIComponent(su.user)}:${encodeURIComponent(su.password)}@127.0.0.1:${port}/postgres`;
}

async function loadOrCreateSuperuser(file: string): Promise<SuperuserFile> {
  if (existsSync(file)) {
    let parsed: Partial<SuperuserFile>;
    try {
      parsed = JSON.parse(await readFile(file, "utf8")) as Partial<SuperuserFile>;
    } catch (e) {
      throw new EmbeddedPostgresError(`cannot read ${file}: ${errnoText(e)}; ${USE_EXTERNAL}`);
    }
    if (typeof parsed.user !== "string" || typeof parsed.password !== "string") throw new EmbeddedPostgresError(`${file} is malformed (expected {"user","password"}); restore it from a backup, ${USE_EXTERNAL}`);
    return parsed as SuperuserFile;
  }
  const su: SuperuserFile = { user: SUPERUSER, password: randomBytes(24).toString("base64url") };
  await writeFile(file, JSON.stringify(su) + "\n", { mode: 0o600 });
  return su;
}

/** Stops the postmaster serving the cluster of `dataDir` (whoever started it); a no-op when none runs. */
export async function stopEmbeddedPostgres(dataDir: string): Promise<void> {
  const clusterDir = embeddedClusterDir(dataDir);
  const running = findRunningPostmaster(clusterDir);
  if (running) await stopByPid(running.pid, clusterDir);
}

/** The running postmaster's pid, or null (tests, the kill -9 drills). */
export function embeddedPostmasterPid(dataDir: string): number | null {
  return readPidFile(embeddedClusterDir(dataDir))?.pid ?? null;
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
