// The embedded PostgreSQL: one cluster per data directory, reused across starts, adopted
// when a killed owner left it running, and started again after its own kill -9 (stale
// postmaster.pid).
import { readFileSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, stopEmbeddedPostgres } from "../../host/audit/embedded.js";
import { tempDataDir } from "./helpers.js";

let dir: string;

beforeAll(async () => {
  dir = await tempDataDir("embedded");
});

afterAll(async () => {
  await stopEmbeddedPostgres(dir);
  await rm(dir, { recursive: true, force: true });
});

async function query<T>(dsn: string, text: string): Promise<T[]> {
  const sql = postgres(dsn, { max: 1, onnotice: () => undefined });
  try {
    return (await sql.unsafe(text)) as unknown as T[];
  } finally {
    await sql.end();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const postmasterPid = (): number => Number(readFileSync(join(dir, "cluster", "postmaster.pid"), "utf8").split("\n")[0]);

describe("embedded PostgreSQL", () => {
  it("initialises once, keeps its data across restarts and stores the superuser password 0600", async () => {
    const a = await startEmbeddedPostgres({ dataDir: dir });
    expect(a.adopted).toBe(false);
    await query(a.dsn, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)");
    await a.stop();
    const b = await startEmbeddedPostgres({ dataDir: dir });
    expect(await query<{ x: number }>(b.dsn, "SELECT x FROM kept")).toEqual([{ x: 42 }]);
    expect(statSync(join(dir, "superuser.json")).mode & 0o777).toBe(0o600);
    // A second start while it runs adopts the running server instead of starting another.
    const c = await startEmbeddedPostgres({ dataDir: dir });
    expect(c.adopted).toBe(true);
    expect(c.port).toBe(b.port);
    await c.stop();
    await b.stop(); // already stopped through the adopting handle: a no-op, not a hang
  });

  it("starts again after the postmaster itself was killed with SIGKILL (stale postmaster.pid)", async () => {
    const a = await startEmbeddedPostgres({ dataDir: dir });
    const pid = postmasterPid();
    process.kill(pid, "SIGKILL");
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
    const b = await startEmbeddedPostgres({ dataDir: dir });
    expect(b.adopted).toBe(false);
    expect(await query<{ x: number }>(b.dsn, "SELECT x FROM kept")).toEqual([{ x: 42 }]);
    await a.stop();
    await b.stop();
  });
});
