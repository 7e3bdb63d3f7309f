// kill -9 recovery: a writer process is SIGKILLed mid-load (once with PostgreSQL up, once
// with PostgreSQL down so the records live only in the spool); a new writer on the same
// data directory must bring every acknowledged record into PostgreSQL exactly once.
import { spawn, type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import postgres from "postgres";
import { createPublicKey } from "node:crypto";
import { foldCheckpoints } from "../../host/audit/checkpoint-evidence.js";
import { readCheckpoints } from "../../host/audit/checkpoint-store.js";
import { verifyChains } from "../../host/audit/verify.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, stopEmbeddedPostgres } from "../../host/audit/embedded.js";
import { openAudit } from "../../host/audit/index.js";
import { tempDataDir } from "./helpers.js";

let dir: string;
let port: number;

beforeAll(async () => {
  dir = await tempDataDir("kill9");
  port = (await startEmbeddedPostgres({ dataDir: join(dir, "pg") })).port;
});

afterAll(async () => {
  await stopEmbeddedPostgres(join(dir, "pg"));
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Child {
  proc: ChildProcess;
  acked: string[];
  waitAcks(n: number): Promise<void>;
  exited: Promise<void>;
}

function startWriter(): Child {
  const proc = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "fixtures", "kill9-writer.ts"), dir], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const acked: string[] = [];
  let wanted = Infinity;
  let notify: (() => void) | null = null;
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    if (line.startsWith("ACK ")) acked.push(line.slice(4));
    if (acked.length >= wanted && notify) notify();
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    acked,
    exited,
    waitAcks: (n) =>
      new Promise<void>((resolve, reject) => {
        if (acked.length >= n) return resolve();
        wanted = n;
        notify = resolve;
        void exited.then(() => reject(new Error(`writer exited after ${acked.length} acknowledgements`)));
      }),
  };
}

async function recoverAndCount(acked: string[]): Promise<{ counts: Map<string, number>; verifyOk: boolean; dropped: number; replayed: number }> {
  const audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  try {
    await audit.sink.flush();
    while (audit.sink.status().queued > 0 || !audit.sink.postgresUp) await sleep(20);
    const sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
    try {
      const rows = await sql`SELECT decision_id::text AS id, count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ANY(${acked}::uuid[]) GROUP BY 1`;
      const counts = new Map(rows.map((r) => [r.id as string, r.n as number]));
      const report = await audit.verify();
      // The next run closes the killed run's chain in its checkpoint, at the head PostgreSQL
      // holds after the replay; verified against the checkpoints, nothing is missing or extra.
      await audit.sink.checkpoint();
      const evidence = foldCheckpoints([await readCheckpoints(audit.checkpoints.dir)], [createPublicKey(audit.checkpoints.publicKeyPem)]);
      const killed = [...evidence.chains.values()].filter((c) => c.declaration.chain_id !== audit.sink.head().chain_id);
      expect(killed.length).toBeGreaterThan(0);
      for (const c of killed) expect(c.closed, c.declaration.chain_id).not.toBeNull();
      const signed = await verifyChains(audit.query, { checkpoints: evidence });
      expect(signed.broken).toEqual([]);
      expect(signed.problems).toEqual([]);
      return { counts, verifyOk: report.ok, dropped: audit.sink.counters.dropped, replayed: audit.sink.counters.replayed };
    } finally {
      await sql.end();
    }
  } finally {
    await audit.close();
    // close() stops the cluster it adopted; bring it back for the next case.
    port = (await startEmbeddedPostgres({ dataDir: join(dir, "pg"), port })).port;
  }
}

describe("kill -9 of the writer", () => {
  it("with PostgreSQL up: every acknowledged record is in PostgreSQL exactly once", async () => {
    const child = startWriter();
    await child.waitAcks(5000);
    child.proc.kill("SIGKILL");
    await child.exited;
    const acked = [...child.acked];
    expect(acked.length).toBeGreaterThanOrEqual(5000);
    const { counts, verifyOk, dropped } = await recoverAndCount(acked);
    expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
    // The durable records form a prefix of the killed writer's chain: no hole, chain intact.
    expect(verifyOk).toBe(true);
    expect(dropped).toBe(0);
  });

  it("with PostgreSQL down at the kill: the acknowledged records come back from the spool", async () => {
    const child = startWriter();
    await child.waitAcks(2000);
    await stopEmbeddedPostgres(join(dir, "pg"));
    // Acknowledgements of records committed just before the stop can still be on their way
    // through the child's stdout (a loaded machine); let them pass before counting from here.
    await child.waitAcks(child.acked.length + 1000);
    const atStop = child.acked.length;
    await child.waitAcks(atStop + 3000); // these were only ever spooled
    child.proc.kill("SIGKILL");
    await child.exited;
    const acked = [...child.acked];
    port = (await startEmbeddedPostgres({ dataDir: join(dir, "pg"), port })).port;
    const { counts, verifyOk, dropped, replayed } = await recoverAndCount(acked);
    expect(replayed).toBeGreaterThanOrEqual(3000);
    expect(acked.filter((id) => counts.get(id) !== 1)).toEqual([]);
    expect(verifyOk).toBe(true);
    expect(dropped).toBe(0);
  });
});
