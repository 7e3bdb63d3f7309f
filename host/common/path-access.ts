// Who can reach a path, and why not, in one line: a start-up failure on a directory names the
// path, the user and the reason (not a stack trace), so the fix is obvious.
import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { mkdir, access, constants } from "node:fs/promises";
import { dirname, resolve } from "node:path";

/** A start-up problem with a path, already phrased as one line: what, why, the fix. */
export class PathAccessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PathAccessError";
  }
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** The account running this process. */
export function currentAccount(): Account {
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  return { name: accountName(uid), uid, gid };
}

function accountName(uid: number): string {
  if (uid === 0) return "root";
  try {
    const line = execFileSync("getent", ["passwd", String(uid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return line.split(":")[0] || `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
}

/** "alice (uid 1000)". */
export function describeAccount(a: Account): string {
  return `${a.name} (uid ${a.uid})`;
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  ENOTDIR: "a component of the path is not a directory",
  ENOENT: "no such file or directory",
  EEXIST: "exists and is not a directory",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "the path is too long",
};

/** The reason of a failed file operation in words ("permission denied"), without the stack. */
export function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code && ERRNO_TEXT[code]) return ERRNO_TEXT[code];
  return e instanceof Error ? e.message.split("\n")[0]! : String(e);
}

export interface Blocker {
  /** The directory that stops `account` (or the path component that is not a directory). */
  path: string;
  /** "mode 700, owner root" or "not a directory". */
  detail: string;
}

/** Whether `a` may search (x) a directory with this stat, as the kernel decides it for a process with only the account's primary group. */
function maySearch(st: { mode: number; uid: number; gid: number }, a: Account): boolean {
  if (a.uid === 0) return true;
  if (st.uid === a.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === a.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/**
 * The first existing directory on the way down to `path` (its ancestors, and `path` itself when
 * `inclusive`) that account `a` cannot traverse, or a component that is not a directory; null
 * when every existing one lets it through. Processes are spawned with only their primary group
 * (libuv drops supplementary groups), so that is the group that counts.
 */
export function firstBlocker(path: string, a: Account, inclusive = true): Blocker | null {
  const full = resolve(path);
  const chain: string[] = [];
  for (let cur = inclusive ? full : dirname(full); ; cur = dirname(cur)) {
    chain.unshift(cur);
    if (dirname(cur) === cur) break;
  }
  for (const dir of chain) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      return null; // does not exist yet: whoever creates it decides its mode
    }
    if (!st.isDirectory()) return { path: dir, detail: "not a directory" };
    if (!maySearch(st, a)) return { path: dir, detail: `mode ${(st.mode & 0o777).toString(8)}, owner ${accountName(st.uid)}` };
  }
  return null;
}

/**
 * Creates `dir` (0700) when needed and checks this process can write it; otherwise throws a
 * PathAccessError naming the directory, the account and the reason. `setting` names where the
 * path came from (e.g. "ZT_DATA_DIR").
 */
export async function ensureWritableDir(dir: string, setting: string, fix: string): Promise<void> {
  const me = currentAccount();
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new PathAccessError(`${setting} ${dir}: cannot create or write it as ${describeAccount(me)}: ${whyNot(dir, me, e)}; ${fix}`);
  }
}

/** Why `a` could not create or write `dir`: the blocking directory when there is one, else the errno in words. */
export function whyNot(dir: string, a: Account, e: unknown): string {
  const b = firstBlocker(dir, a);
  if (b) return b.detail === "not a directory" ? `${b.path} is not a directory` : `${b.path} is not reachable (${b.detail})`;
  if ((e as NodeJS.ErrnoException | null)?.code === "EACCES") {
    let cur = resolve(dir);
    for (;;) {
      try {
        const st = statSync(cur);
        return `${cur} is not writable (mode ${(st.mode & 0o777).toString(8)}, owner ${accountName(st.uid)})`;
      } catch {
        if (dirname(cur) === cur) break;
        cur = dirname(cur);
      }
    }
  }
  return errnoText(e);
}
