// The admin token (where it comes from, and how it is stored) and the admin check that
// extensions get as `core.admin`. Who may call which route is decided by the identity gate
// (identity-gate.ts) from the table in route-identity.ts; `core.admin` only re-checks what a
// route's `admin` line already enforced, for extensions written before the table existed.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { MiddlewareHandler } from "hono";
import type { CallerAuth } from "../identity/caller.js";
import type { EngineEnv } from "./context.js";
import { errorResponse } from "./errors.js";
import { callerOf } from "./identity-gate.js";

/** Refuses (401) a request whose caller the gate did not find to be an admin. */
export function adminCheck(auth: CallerAuth): MiddlewareHandler<EngineEnv> {
  return async (c, next) => {
    const r = auth.permit(callerOf(c), "admin");
    if (!r.ok) {
      c.header("www-authenticate", "Bearer");
      return errorResponse(c, r.status, { code: r.code, message: r.error });
    }
    await next();
  };
}

export interface AdminTokenSource {
  token: string;
  /** env: ZT_ADMIN_TOKEN; file: ZT_ADMIN_TOKEN_FILE or a token stored earlier; generated: created now. */
  origin: "env" | "file" | "generated";
  /** The file holding the token, when there is one. */
  path: string | null;
}

export const ADMIN_TOKEN_FILE = "admin-token";

/**
 * The admin token: ZT_ADMIN_TOKEN, else ZT_ADMIN_TOKEN_FILE, else `<dataDir>/admin-token`,
 * created (32 random bytes, base64url, mode 0600) when absent.
 */
export async function ensureAdminToken(opts: { token: string | null; tokenFile: string | null; dataDir: string }): Promise<AdminTokenSource> {
  if (opts.token !== null) return { token: opts.token, origin: "env", path: null };
  if (opts.tokenFile !== null) {
    const token = (await readFile(opts.tokenFile, "utf8")).trim();
    if (token.length < 16) throw new Error(`${opts.tokenFile}: the admin token must be at least 16 characters`);
    return { token, origin: "file", path: opts.tokenFile };
  }
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const path = join(opts.dataDir, ADMIN_TOKEN_FILE);
  try {
    const s = await stat(path);
    if ((s.mode & 0o077) !== 0) throw new Error(`${path} is readable by others (mode ${(s.mode & 0o777).toString(8)}); run: chmod 600 ${path}`);
    const token = (await readFile(path, "utf8")).trim();
    if (token.length < 16) throw new Error(`${path}: the stored admin token is shorter than 16 characters`);
    return { token, origin: "file", path };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const token = randomBytes(32).toString("base64url");
  // O_EXCL: two engines starting on one data directory must not overwrite each other's token.
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(token + "\n");
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { token, origin: "generated", path };
}
