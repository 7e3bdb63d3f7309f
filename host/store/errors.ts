// How the shared state fails: unreachable (writes answer 503, replicas keep serving what they
// have) versus a real error (a bug or a broken schema, which must not be mistaken for an outage).

export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the shared state store (PostgreSQL) is unreachable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "StoreUnavailableError";
  }
}

/**
 * Connection-level trouble (refused, reset, timed out, shutting down) rather than an SQL error:
 * a socket errno or a postgres.js connection code (ECONNREFUSED, CONNECTION_CLOSED,
 * CONNECT_TIMEOUT, ...), or SQLSTATE class 08 (connection), 57 (operator intervention:
 * shutdown, terminated backend) or 53 (resources). An error without a code is a bug, not an outage.
 */
export function isUnreachable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  if (/^E[A-Z]+$/.test(code) || code.startsWith("CONNECT")) return true;
  return /^(08|57|53)[0-9A-Z]{3}$/.test(code);
}

/**
 * Longest a call on the store may take before the replica treats the store as unreachable.
 * While the server is down, postgres.js keeps a connection that failed during its start-up
 * retrying, and the query waiting on it neither runs nor fails: this bound is what turns an
 * outage into a 503 and a stale flag.
 */
export const STORE_CALL_TIMEOUT_MS = 5_000;

/**
 * Runs `f`; connection-level failures become StoreUnavailableError, anything else is rethrown.
 * A call that does not settle in STORE_CALL_TIMEOUT_MS counts as unreachable too: a query
 * stranded on a connection that died (see guardDriverWriteAfterClose) must not hold the
 * replica's sync queue forever.
 */
export async function reachable<T>(what: string, f: () => Promise<T>, timeoutMs = STORE_CALL_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(new Error(`${what}: no answer within ${timeoutMs} ms`))), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([f(), timeout]);
  } catch (e) {
    if (e instanceof StoreUnavailableError) throw e;
    if (isUnreachable(e)) throw new StoreUnavailableError(e);
    throw e;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * porsager/postgres#1208 (3.4.9, fix not released): a small write is buffered for a
 * setImmediate; when the server closes the connection first (pg_terminate_backend, a restart,
 * a failover), the deferred write dereferences the null socket and throws from the timer,
 * outside any query's promise. The driver has already rejected the queries on that connection
 * (CONNECTION_CLOSED) and reconnects on its own, so the throw carries no information.
 */
export function isDriverWriteAfterClose(e: unknown): boolean {
  if (!(e instanceof TypeError) || !e.message.includes("reading 'write'")) return false;
  const stack = e.stack ?? "";
  return stack.includes("nextWrite") && /postgres[\\/]src[\\/]connection\.js/.test(stack);
}

/**
 * Keeps the process alive through that one driver defect; every other uncaught exception still
 * ends the process as Node would (stack on stderr, exit code 1). Install once, in the process's
 * entry point. Returns a function that removes the guard.
 */
export function guardDriverWriteAfterClose(onSurvived: (e: Error) => void): () => void {
  const handler = (e: Error): void => {
    if (isDriverWriteAfterClose(e)) {
      onSurvived(e);
      return;
    }
    process.stderr.write(`${e?.stack ?? String(e)}\n`);
    process.exit(1);
  };
  process.on("uncaughtException", handler);
  return () => process.off("uncaughtException", handler);
}
