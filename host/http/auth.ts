// Who may change things: one middleware in front of every admin route (policy and incident
// writes, audit reads). It asks a list of authenticators in turn; the first that recognises
// the caller wins. Today that is the admin bearer token; the identity code can add mTLS /
// SPIFFE admin identities by appending an authenticator, without touching the routes.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Context, MiddlewareHandler } from "hono";
import type { EngineEnv } from "./context.js";
import { errorResponse } from "./errors.js";

/** Returns the caller's identity (e.g. "admin-token", "spiffe://…/admin") or null when it does not recognise it. */
export type AdminAuthenticator = (c: Context<EngineEnv>) => string | null | Promise<string | null>;

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/**
 * `Authorization: Bearer <token>` against the configured admin token. Both sides are hashed
 * first so the comparison is constant-time whatever the lengths.
 */
export function bearerTokenAuthenticator(token: string): AdminAuthenticator {
  const expected = digest(token);
  return (c) => {
    // Node's header object when there is one (no Headers copy kept alive by a long poll).
    const incoming = (c.env as { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined)?.incoming;
    const raw = incoming !== undefined ? incoming.headers["authorization"] : c.req.header("authorization");
    const header = Array.isArray(raw) ? raw[0] : raw;
    if (header === undefined) return null;
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) return null;
    return timingSafeEqual(digest(m[1]!), expected) ? "admin-token" : null;
  };
}

export function adminAuth(authenticators: readonly AdminAuthenticator[]): MiddlewareHandler<EngineEnv> {
  return async (c, next) => {
    for (const authenticate of authenticators) {
      const who = await authenticate(c);
      if (who !== null) {
        c.set("caller", who);
        await next();
        return;
      }
    }
    const sent = c.req.header("authorization") !== undefined;
    c.header("www-authenticate", sent ? 'Bearer error="invalid_token"' : "Bearer");
    return errorResponse(c, 401, {
      code: sent ? "invalid_credentials" : "unauthenticated",
      message: sent ? "the admin credentials were not accepted" : "this endpoint needs `Authorization: Bearer <admin token>`",
    });
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
