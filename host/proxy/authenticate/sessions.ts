// Server-side sessions in PostgreSQL (zt_proxy.sessions), keyed by the sha256 of an opaque id:
// the browser holds the id sealed in a small cookie, the CLI holds it as a bearer token
// ("ztp_…"), and neither is ever stored. Idle and absolute expiry, the ID and refresh tokens
// sealed at rest, and a short per-replica cache so most requests do not read the database.
import { createHash, randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import type { Identity } from "./identity.js";
import type { Sealer } from "./seal.js";

export type SessionKind = "browser" | "cli";

export interface StoredTokens {
  readonly idToken: string;
  readonly refreshToken: string | null;
}

export interface Session {
  readonly idHash: Buffer;
  readonly kind: SessionKind;
  readonly host: string;
  readonly parentHash: Buffer | null;
  identity: Identity;
  /** Seconds since the epoch when the ID token expires (then refresh); null: no tokens kept. */
  tokensExpireAt: number | null;
  incident: string | null;
  /** Milliseconds since the epoch. */
  lastSeenAt: number;
  idleExpiresAt: number;
  readonly expiresAt: number;
}

export interface SessionLimits {
  readonly idleSec: number;
  readonly maxSec: number;
  /** How long a replica trusts a row it read (ms); 0: always read. */
  readonly cacheMs: number;
}

/** CLI tokens carry this prefix, so a leaked one is recognisable (secret scanners, logs). */
export const CLI_TOKEN_PREFIX = "ztp_";
const ID_RE = /^[A-Za-z0-9_-]{43}$/;
const CACHE_MAX = 10_000;
/** The idle expiry is pushed forward in the database at most this often per session. */
const TOUCH_EVERY_MS = 60_000;

export function newSessionId(): string {
  return randomBytes(32).toString("base64url");
}

/** The key of a session id; null for text that is not one (never reaches the database). */
export function sessionHash(id: string): Buffer | null {
  return ID_RE.test(id) ? createHash("sha256").update(id).digest() : null;
}

interface Row {
  id_hash: Buffer;
  kind: SessionKind;
  host: string;
  parent_hash: Buffer | null;
  subject: string;
  email: string | null;
  roles: unknown;
  amr: unknown;
  acr: string | null;
  auth_time: Date | null;
  idp_sid: string | null;
  tokens_expire_at: Date | null;
  incident: string | null;
  last_seen_at: Date;
  idle_expires_at: Date;
  expires_at: Date;
}

const COLUMNS = "id_hash, kind, host, parent_hash, subject, email, roles, amr, acr, auth_time, idp_sid, tokens_expire_at, incident, last_seen_at, idle_expires_at, expires_at";

/** jsonb arrives as text (connections skip postgres.js's type fetch, see audit/connect.ts). */
function strings(v: unknown): string[] {
  const a = typeof v === "string" ? (JSON.parse(v) as unknown) : v;
  return Array.isArray(a) ? a.filter((x): x is string => typeof x === "string") : [];
}

function fromRow(r: Row): Session {
  return {
    idHash: r.id_hash,
    kind: r.kind,
    host: r.host,
    parentHash: r.parent_hash,
    identity: {
      subject: r.subject,
      email: r.email,
      roles: strings(r.roles),
      amr: strings(r.amr),
      acr: r.acr,
      authTime: r.auth_time ? Math.floor(r.auth_time.getTime() / 1000) : null,
      idpSid: r.idp_sid,
    },
    tokensExpireAt: r.tokens_expire_at ? Math.floor(r.tokens_expire_at.getTime() / 1000) : null,
    incident: r.incident,
    lastSeenAt: r.last_seen_at.getTime(),
    idleExpiresAt: r.idle_expires_at.getTime(),
    expiresAt: r.expires_at.getTime(),
  };
}

function live(s: Session, nowMs: number): boolean {
  return nowMs < s.idleExpiresAt && nowMs < s.expiresAt;
}

export class SessionStore {
  private readonly cache = new Map<string, { session: Session; readAt: number }>();

  constructor(
    private readonly sql: Sql,
    private readonly atRest: Sealer,
    private readonly limits: SessionLimits,
  ) {}

  /** A new session; returns its id (to seal into a cookie or hand to the CLI) and the session. */
  async create(kind: SessionKind, host: string, identity: Identity, tokens: StoredTokens | null, tokensExpireAt: number | null, parent: Session | null, nowMs = Date.now()): Promise<{ id: string; session: Session }> {
    const id = newSessionId();
    const idHash = sessionHash(id)!;
    // A session made from another (the CLI's from a browser's) never outlives it.
    const expiresAt = Math.min(nowMs + this.limits.maxSec * 1000, parent?.expiresAt ?? Infinity);
    const sealed = tokens ? await this.atRest.seal({ i: tokens.idToken, r: tokens.refreshToken }) : null;
    const [row] = await this.sql<Row[]>`
      INSERT INTO zt_proxy.sessions (id_hash, kind, host, parent_hash, subject, email, roles, amr, acr, auth_time, idp_sid, tokens, tokens_expire_at,
        incident, created_at, last_seen_at, idle_expires_at, expires_at)
      VALUES (${idHash}, ${kind}, ${host}, ${parent?.idHash ?? null}, ${identity.subject}, ${identity.email}, ${JSON.stringify(identity.roles)}::jsonb,
        ${JSON.stringify(identity.amr)}::jsonb, ${identity.acr}, ${identity.authTime === null ? null : new Date(identity.authTime * 1000)}, ${identity.idpSid},
        ${sealed}, ${tokensExpireAt === null ? null : new Date(tokensExpireAt * 1000)}, ${parent?.incident ?? null}, ${new Date(nowMs)}, ${new Date(nowMs)},
        ${new Date(Math.min(nowMs + this.limits.idleSec * 1000, expiresAt))}, ${new Date(expiresAt)})
      RETURNING ${this.sql.unsafe(COLUMNS)}`;
    const session = fromRow(row!);
    this.remember(idHash, session, nowMs);
    return { id, session };
  }

  private remember(idHash: Buffer, session: Session, nowMs: number): void {
    if (this.limits.cacheMs === 0) return;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(idHash.toString("base64"), { session, readAt: nowMs });
  }

  private forget(idHash: Buffer): void {
    this.cache.delete(idHash.toString("base64"));
  }

  /** The live session for an id; null when unknown, ended or expired (an expired row is deleted). */
  async get(id: string, nowMs = Date.now()): Promise<Session | null> {
    const idHash = sessionHash(id);
    return idHash === null ? null : this.byHash(idHash, nowMs);
  }

  /** The live session with this key (see get). */
  async byHash(idHash: Buffer, nowMs = Date.now()): Promise<Session | null> {
    const hit = this.cache.get(idHash.toString("base64"));
    if (hit && nowMs - hit.readAt < this.limits.cacheMs && live(hit.session, nowMs)) return hit.session;
    const [row] = await this.sql<Row[]>`SELECT ${this.sql.unsafe(COLUMNS)} FROM zt_proxy.sessions WHERE id_hash = ${idHash}`;
    if (!row) {
      this.forget(idHash);
      return null;
    }
    const session = fromRow(row);
    if (!live(session, nowMs)) {
      await this.end(session);
      return null;
    }
    this.remember(idHash, session, nowMs);
    return session;
  }

  /** Activity: pushes the idle expiry forward (written at most once a minute per session). */
  async touch(s: Session, nowMs = Date.now()): Promise<void> {
    if (nowMs - s.lastSeenAt < TOUCH_EVERY_MS) return;
    s.lastSeenAt = nowMs;
    s.idleExpiresAt = Math.min(nowMs + this.limits.idleSec * 1000, s.expiresAt);
    await this.sql`UPDATE zt_proxy.sessions SET last_seen_at = ${new Date(nowMs)}, idle_expires_at = ${new Date(s.idleExpiresAt)} WHERE id_hash = ${s.idHash}`;
  }

  /** The session's ID and refresh tokens (opened from their sealed form), or null. */
  async tokens(s: Session): Promise<StoredTokens | null> {
    const [row] = await this.sql<{ tokens: string | null }[]>`SELECT tokens FROM zt_proxy.sessions WHERE id_hash = ${s.idHash}`;
    if (!row?.tokens) return null;
    const p = await this.atRest.open(row.tokens);
    return p && typeof p.i === "string" ? { idToken: p.i, refreshToken: typeof p.r === "string" ? p.r : null } : null;
  }

  /**
   * Refreshes under a row lock, so that replicas and concurrent requests refresh once: `refresh`
   * runs only when the tokens are still due at `dueBySec` once the lock is held. Returns the
   * session as stored afterwards, or null when it ended meanwhile.
   */
  async refreshLocked(s: Session, dueBySec: number, refresh: (tokens: StoredTokens | null) => Promise<{ identity: Identity; tokens: StoredTokens; expiresAt: number }>): Promise<Session | null> {
    const out = await this.sql.begin(async (tx) => {
      const [row] = await tx<(Row & { tokens: string | null })[]>`SELECT ${tx.unsafe(COLUMNS)}, tokens FROM zt_proxy.sessions WHERE id_hash = ${s.idHash} FOR UPDATE`;
      if (!row) return null;
      const current = fromRow(row);
      if (current.tokensExpireAt === null || current.tokensExpireAt > dueBySec) return current;
      const opened = row.tokens ? await this.atRest.open(row.tokens) : null;
      const next = await refresh(opened && typeof opened.i === "string" ? { idToken: opened.i, refreshToken: typeof opened.r === "string" ? opened.r : null } : null);
      const sealed = await this.atRest.seal({ i: next.tokens.idToken, r: next.tokens.refreshToken });
      const id = next.identity;
      const [updated] = await tx<Row[]>`
        UPDATE zt_proxy.sessions SET subject = ${id.subject}, email = ${id.email}, roles = ${JSON.stringify(id.roles)}::jsonb, amr = ${JSON.stringify(id.amr)}::jsonb,
          acr = ${id.acr}, auth_time = ${id.authTime === null ? null : new Date(id.authTime * 1000)}, tokens = ${sealed}, tokens_expire_at = ${new Date(next.expiresAt * 1000)}
        WHERE id_hash = ${s.idHash} RETURNING ${tx.unsafe(COLUMNS)}`;
      return fromRow(updated!);
    });
    if (out === null) this.forget(s.idHash);
    else this.remember(s.idHash, out, Date.now());
    return out;
  }

  async setIncident(s: Session, incident: string | null): Promise<void> {
    s.incident = incident;
    await this.sql`UPDATE zt_proxy.sessions SET incident = ${incident} WHERE id_hash = ${s.idHash}`;
  }

  /** Ends a session and the sessions made from it (a CLI token from a browser login). */
  async end(s: Session): Promise<void> {
    await this.sql`DELETE FROM zt_proxy.sessions WHERE id_hash = ${s.idHash} OR parent_hash = ${s.idHash}`;
    this.forget(s.idHash);
    // Children may be cached on this replica; a full clear is cheap and rare (logout).
    if (s.parentHash === null) this.cache.clear();
  }

  /** Ends every session of one sign-in at the issuer (logout everywhere on this proxy). */
  async endSignIn(s: Session): Promise<number> {
    if (s.identity.idpSid === null) {
      await this.end(s);
      return 1;
    }
    const rows = await this.sql`DELETE FROM zt_proxy.sessions WHERE idp_sid = ${s.identity.idpSid} AND subject = ${s.identity.subject} OR id_hash = ${s.idHash} OR parent_hash = ${s.idHash} RETURNING 1`;
    this.cache.clear();
    return rows.length;
  }

  /** Deletes expired sessions and used login states; returns how many sessions went. */
  async sweep(nowMs = Date.now()): Promise<number> {
    const now = new Date(nowMs);
    const rows = await this.sql`DELETE FROM zt_proxy.sessions WHERE expires_at <= ${now} OR idle_expires_at <= ${now} RETURNING 1`;
    await this.sql`DELETE FROM zt_proxy.used_states WHERE expires_at <= ${now}`;
    await this.sql`DELETE FROM zt_proxy.cli_codes WHERE expires_at <= ${now}`;
    return rows.length;
  }

  /** Live sessions by kind (the zt_proxy_sessions gauge). */
  async count(nowMs = Date.now()): Promise<Record<SessionKind, number>> {
    const now = new Date(nowMs);
    const rows = await this.sql<{ kind: SessionKind; n: string }[]>`
      SELECT kind, count(*)::text AS n FROM zt_proxy.sessions WHERE expires_at > ${now} AND idle_expires_at > ${now} GROUP BY kind`;
    const out: Record<SessionKind, number> = { browser: 0, cli: 0 };
    for (const r of rows) out[r.kind] = Number(r.n);
    return out;
  }
}
