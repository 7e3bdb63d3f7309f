// Every way the embedded PostgreSQL can fail to start, as one line: what failed, why, and the
// fix (a path and the account that cannot reach it, the server's own FATAL line, ...). `zt serve`
// prints it and exits; nothing above it needs a stack trace to understand it.
export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(`embedded PostgreSQL: ${message.replace(/\s*\n\s*/g, " ")}`);
    this.name = "EmbeddedPostgresError";
  }
}

/** The fix that always works: an external server. */
export const USE_EXTERNAL = "or set ZT_AUDIT_DSN to use an external PostgreSQL";
