// A lock file naming its holder (pid and process start time), created with O_EXCL (open "wx"):
// of two processes starting at once, exactly one creates it. A lock whose holder is gone (no
// such process, or one with another start time: the pid was reused, as after a container
// restart) is taken over, and only under a second, short-lived lock file, so that two
// processes finding the same stale lock cannot both remove it and then both hold the lock.
import { readFileSync } from "node:fs";
import { open, readFile, rm, stat } from "node:fs/promises";

interface Holder {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat); null where /proc is not there. */
  start: string | null;
  text: string;
}

/** A lock file whose content cannot be read back is left alone this long (its writer may be mid-write). */
const UNREADABLE_GRACE_MS = 5_000;
const TAKEOVER_WAIT_MS = 5_000;

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Field 22; the command name (field 2) is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function me(): string {
  return `${process.pid} ${startTime(process.pid) ?? "-"}\n`;
}

async function holderOf(path: string): Promise<Holder | "unreadable" | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  const m = /^(\d+)(?: (\d+|-))?\s*$/.exec(text);
  if (!m) return "unreadable";
  return { pid: Number(m[1]), start: m[2] === undefined || m[2] === "-" ? null : m[2], text };
}

function alive(h: Holder): boolean {
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = startTime(h.pid);
  return h.start === null || now === null || now === h.start;
}

/** Creates `path` holding `content`; false when it exists. */
async function create(path: string, content: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms;
  } catch {
    return true;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` holding `<path>.takeover`; a takeover lock left by a dead process is removed. */
async function underTakeover(path: string, fn: () => Promise<void>): Promise<void> {
  const guard = `${path}.takeover`;
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  while (!(await create(guard, me()))) {
    const h = await holderOf(guard);
    if (h !== null && h !== "unreadable" && !alive(h)) await rm(guard, { force: true });
    else if (h === "unreadable" && (await olderThan(guard, UNREADABLE_GRACE_MS))) await rm(guard, { force: true });
    else if (Date.now() > deadline) throw new Error(`${guard} is held by another process`);
    else await pause(5);
  }
  try {
    await fn();
  } finally {
    await rm(guard, { force: true });
  }
}

/**
 * Takes the lock file at `path` for this process, or throws `<what> is in use by process <pid><hint>`.
 * Taking it again in the process that holds it succeeds.
 */
export async function takeLockFile(path: string, what: string, hint = ""): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    if (await create(path, me())) return;
    const h = await holderOf(path);
    if (h === null) continue;
    if (h === "unreadable") {
      if (!(await olderThan(path, UNREADABLE_GRACE_MS))) {
        await pause(10);
        continue;
      }
    } else if (alive(h)) {
      if (h.pid === process.pid) return;
      throw new Error(`${what} is in use by process ${h.pid}${hint}`);
    }
    // Stale: remove it only if it is still the one judged stale (another process may have
    // taken it over meanwhile), then race for it again with O_EXCL.
    const seen = h === "unreadable" ? null : h.text;
    await underTakeover(path, async () => {
      const again = await holderOf(path);
      if (again === null) return;
      if (seen === null ? again === "unreadable" : again !== "unreadable" && again.text === seen) await rm(path, { force: true });
    });
  }
  throw new Error(`${what}: could not take the lock file ${path}`);
}
