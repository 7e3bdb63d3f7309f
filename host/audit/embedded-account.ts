// The account the embedded PostgreSQL runs as when ZT runs as root (PostgreSQL refuses root):
// a dedicated system account, `zt-postgres`, with no login shell and no home, created on first
// start. Not Debian's `postgres`: that one owns the distribution's own clusters (and their peer
// authentication), which the audit trail's server has no business reaching, nor they it.
// docs/audit.md ("Running as root") gives the whole argument.
import { execFileSync } from "node:child_process";
import type { Account } from "../common/path-access.js";
import { EmbeddedPostgresError, USE_EXTERNAL } from "./embedded-error.js";

export const EMBEDDED_ACCOUNT = "zt-postgres";

function getent(key: string): Account | null {
  let line: string;
  try {
    line = execFileSync("getent", ["passwd", key], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return null; // exit 2: no such entry
  }
  const [name, , uid, gid] = line.trim().split(":");
  if (!name || !uid || !gid) return null;
  return { name, uid: Number(uid), gid: Number(gid) };
}

/** The account with this uid (the owner of an existing cluster), named when the system knows it. */
export function accountOfUid(uid: number, gid: number): Account {
  return getent(String(uid)) ?? { name: `uid ${uid}`, uid, gid };
}

function tryCreate(name: string): string | null {
  const attempts: Array<[string, string[]]> = [
    ["useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "ZT embedded PostgreSQL", name]],
    // busybox (Alpine): a system user in a group of its own name.
    ["adduser", ["-S", "-D", "-H", "-h", "/nonexistent", "-s", "/sbin/nologin", "-g", "ZT embedded PostgreSQL", name]],
  ];
  let last = "neither useradd nor adduser is installed";
  for (const [cmd, args] of attempts) {
    try {
      execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      return null;
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === "ENOENT") continue;
      last = `${cmd} failed: ${(err.stderr ?? err.message).trim().split("\n").pop()}`;
    }
  }
  return last;
}

/** The dedicated account, created when missing (two engines starting at once both end up with the one account). */
export async function embeddedAccount(name = EMBEDDED_ACCOUNT): Promise<Account> {
  let why = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = getent(name);
    if (found) return found;
    // Another process may hold the passwd lock or have just created it: look again before failing.
    why = tryCreate(name) ?? why;
    if (getent(name)) continue;
    await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
  }
  throw new EmbeddedPostgresError(`PostgreSQL refuses to run as root and the system account "${name}" it would run as cannot be created (${why}); create it (useradd --system --user-group ${name}), run zt as an unprivileged user, ${USE_EXTERNAL}`);
}
