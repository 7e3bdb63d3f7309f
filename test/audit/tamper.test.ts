// The auditor's probe (issue 25), each case run against a real `zt audit verify` process and
// its exit code: history is changed with real SQL as the superuser, the owner and the engine
// role, verify with the signed checkpoints must report it (exit 1, the problem named for the
// chain), and once the change is undone the trail verifies again (exit 0). Where a hash chain
// alone cannot see a change, the run without checkpoints shows that limit (exit 0).
import { execFile, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declaredGenesis, linkHash, recordSelectList, recordToRow, rowToRecord, type ChainDeclaration, type StoredColumns } from "../../host/audit/chain.js";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../host/audit/embedded.js";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { declareChains, insertRows } from "../../host/audit/insert.js";
import { bootstrapRoles, type AuditDsns } from "../../host/audit/roles.js";
import type { VerifyReport } from "../../host/audit/verify.js";
import { operatorRecord, serviceRecord, tempDataDir } from "./helpers.js";

const CLI = "dist/host/cli/main.js";

let dir: string;
let pg: EmbeddedPostgresHandle;
let dsns: AuditDsns;
let superuser: Sql;
let owner: Sql;
let engine: Sql;
let chainA: string;
let chainB: string;
let serviceIdA: string;
const quiet = { max: 1, onnotice: () => undefined };

async function openEngine(): Promise<Audit> {
  // The engine against a server it does not own (external mode), so closing it leaves PostgreSQL up.
  return openAudit({ dsn: dsns.engine, migrateDsn: dsns.owner, maintenanceDsn: dsns.maintenance, dataDir: join(dir, "engine"), writerId: "probe", retentionDays: 365, onSpoolFailure: "deny" });
}

async function write(audit: Audit, n: number): Promise<void> {
  for (let i = 0; i < n; i++) audit.sink.append(i % 4 === 3 ? operatorRecord("alice@hanzo.ai", "postgres", "read") : serviceRecord({ decision: i % 3 ? "ALLOW" : "DENY" }));
  await audit.sink.flush();
  while (audit.sink.status().queued > 0) await new Promise((r) => setTimeout(r, 10));
}

interface Run {
  code: number | null;
  report: VerifyReport;
  stderr: string;
}

/** `zt audit verify` as a user runs it: the built CLI in its own process. */
function zt(withCheckpoints: boolean, extra: string[] = []): Run {
  const args = [CLI, "audit", "verify", "--dsn", dsns.engine, "--format", "json", ...extra];
  if (withCheckpoints) args.push("--checkpoints", join(dir, "engine", "checkpoints"), "--public-key", join(dir, "engine", "audit-checkpoint-key.pem"));
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env: { PATH: process.env.PATH ?? "" } });
  return { code: r.status, report: JSON.parse(r.stdout) as VerifyReport, stderr: r.stderr };
}

function problemOf(run: Run, chain: string): string | undefined {
  return run.report.broken.find((b) => b.chain_id === chain)?.problem;
}

async function asSuperuser(statements: (tx: Sql) => Promise<unknown>): Promise<void> {
  await superuser.begin(async (tx) => {
    // The append-only trigger refuses even the superuser; bypassing it is deliberate.
    await tx`SET LOCAL session_replication_role = replica`;
    await statements(tx as unknown as Sql);
  });
}

/** Keeps a copy of rows to put back after the case. */
async function save(where: string, params: unknown[] = []): Promise<() => Promise<void>> {
  const name = `saved_${Math.random().toString(36).slice(2, 8)}`;
  await superuser.unsafe(`CREATE TABLE public.${name} AS SELECT * FROM zt_audit.decisions WHERE ${where}`, params as string[]);
  return () =>
    asSuperuser(async (tx) => {
      await tx.unsafe(`DELETE FROM zt_audit.decisions d USING public.${name} s WHERE d.chain_id = s.chain_id AND d.seq = s.seq`);
      await tx.unsafe(`INSERT INTO zt_audit.decisions SELECT * FROM public.${name}`);
      await tx.unsafe(`DROP TABLE public.${name}`);
    });
}

type Row = StoredColumns & { seq: string; prev_hash: string; hash: string; chain_id: string };

async function chainRows(chain: string): Promise<Row[]> {
  return superuser.unsafe<Row[]>(
    `SELECT ${recordSelectList()}, chain_id, seq::text AS seq, encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash
       FROM zt_audit.decisions d WHERE chain_id = $1 ORDER BY d.seq`,
    [chain],
  );
}

function expectIntact(): void {
  const clean = zt(true);
  expect(clean.report.broken, JSON.stringify(clean.report.broken)).toEqual([]);
  expect(clean.report.problems).toEqual([]);
  expect(clean.code).toBe(0);
}

beforeAll(async () => {
  dir = await tempDataDir("tamper");
  pg = await startEmbeddedPostgres({ dataDir: join(dir, "pg") });
  dsns = await bootstrapRoles(pg.dsn, dir);
  // Chain A: a run that ended with SIGTERM (closed in its last checkpoint); chain B: the next run.
  const first = await openEngine();
  chainA = first.sink.head().chain_id;
  await write(first, 400);
  await first.close();
  const second = await openEngine();
  chainB = second.sink.head().chain_id;
  await write(second, 300);
  await second.close();
  superuser = postgres(pg.dsn.replace(/\/postgres$/, "/zt"), quiet);
  owner = postgres(dsns.owner, quiet);
  engine = postgres(dsns.engine, { ...quiet, fetch_types: false });
  const [svc] = await superuser`SELECT decision_id::text AS id FROM zt_audit.decisions WHERE chain_id = ${chainA} AND source_spiffe_id IS NOT NULL ORDER BY seq LIMIT 1 OFFSET 10`;
  serviceIdA = svc!.id as string;
});

afterAll(async () => {
  await Promise.all([superuser?.end(), owner?.end(), engine?.end()]);
  await pg?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("zt audit verify against the probe", () => {
  it("an untouched trail is intact with and without checkpoints (exit 0); chain B continues chain A", async () => {
    expectIntact();
    const plain = zt(false);
    expect(plain.code).toBe(0);
    expect(plain.report).toMatchObject({ ok: true, chains: 2, records: 700 });
    const [b] = await superuser`SELECT pred_chain_id, pred_seq::int AS seq FROM zt_audit.chains WHERE chain_id = ${chainB}`;
    expect(b).toEqual({ pred_chain_id: chainA, seq: 400 });
  });

  it("records its result as metrics, in a textfile and on a Pushgateway (what the alert rules read)", async () => {
    const pushed: Array<{ method: string; url: string; body: string }> = [];
    const gateway = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        pushed.push({ method: req.method ?? "", url: req.url ?? "", body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", r));
    const port = (gateway.address() as { port: number }).port;
    const file = join(dir, "verify.prom");
    try {
      // The child pushes to a server in this process: run it asynchronously.
      const run = (key: string): Promise<number | null> =>
        new Promise((resolve) => {
          const args = [CLI, "audit", "verify", "--dsn", dsns.engine, "--checkpoints", join(dir, "engine", "checkpoints"), "--public-key", key];
          const child = execFile(process.execPath, [...args, "--metrics-file", file, "--pushgateway", `http://127.0.0.1:${port}`], { env: { PATH: process.env.PATH ?? "" } });
          child.once("exit", (code) => resolve(code));
        });
      expect(await run(join(dir, "engine", "audit-checkpoint-key.pem"))).toBe(0);
      expect(readFileSync(file, "utf8")).toMatch(/^zt_audit_verify_ok 1$/m);
      expect(pushed.at(-1)).toMatchObject({ method: "PUT", url: "/metrics/job/zt_audit_verify", body: expect.stringMatching(/^zt_audit_verify_ok 1$/m) });
      // Checkpoints checked against a key that did not sign them: not intact.
      const stranger = join(dir, "stranger.pem");
      writeFileSync(stranger, generateKeyPairSync("ed25519", { privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } }).publicKey);
      expect(await run(stranger)).toBe(1);
      expect(readFileSync(file, "utf8")).toMatch(/^zt_audit_verify_ok 0$/m);
      expect(pushed.at(-1)?.body).toMatch(/^zt_audit_verify_ok 0$/m);
    } finally {
      await new Promise((r) => gateway.close(r));
    }
  });

  for (const column of ["operator_roles", "operator_mfa", "operator_incident", "target_action"] as const) {
    it(`unhashed column: the superuser sets ${column} on a service record`, async () => {
      const value = { operator_roles: "'{admin}'::text[]", operator_mfa: "true", operator_incident: "'INC-9'", target_action: "'drop'" }[column];
      await asSuperuser((tx) => tx.unsafe(`UPDATE zt_audit.decisions SET ${column} = ${value} WHERE decision_id = $1`, [serviceIdA]));
      const run = zt(false);
      expect(run.code).toBe(1);
      expect(problemOf(run, chainA)).toBe(`column ${column} holds a value its record does not carry, outside the hash (row modified)`);
      await asSuperuser((tx) => tx.unsafe(`UPDATE zt_audit.decisions SET ${column} = NULL WHERE decision_id = $1`, [serviceIdA]));
      expectIntact();
    });
  }

  it("tail truncation: the superuser deletes the last records of a closed chain", async () => {
    const restore = await save("chain_id = $1 AND seq > 290", [chainB]);
    await asSuperuser((tx) => tx`DELETE FROM zt_audit.decisions WHERE chain_id = ${chainB} AND seq > 290`);
    expect(zt(false).code).toBe(0); // a hash chain alone cannot see its end cut off
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(problemOf(run, chainB)).toMatch(/^record 300 signed in checkpoint probe#\d+ is missing \(records cut from the chain's end\)$/);
    await restore();
    expectIntact();
  });

  it("whole-chain deletion: the superuser deletes every record and the declaration of chain A", async () => {
    const restore = await save("chain_id = $1", [chainA]);
    const [decl] = await superuser`SELECT * FROM zt_audit.chains WHERE chain_id = ${chainA}`;
    await asSuperuser(async (tx) => {
      await tx`DELETE FROM zt_audit.decisions WHERE chain_id = ${chainA}`;
      await tx`DELETE FROM zt_audit.chains WHERE chain_id = ${chainA}`;
    });
    // Chain B's declaration names A's head, so even without checkpoints the loss shows.
    const plain = zt(false);
    expect(plain.code).toBe(1);
    expect(problemOf(plain, chainA)).toBe(`the chain is missing: record 400 named by the declaration of chain ${chainB} is not in the trail`);
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(problemOf(run, chainA)).toMatch(/^the chain is missing: record \d+ signed in checkpoint probe#\d+ is not in the trail$/);
    await asSuperuser((tx) => tx`INSERT INTO zt_audit.chains ${tx(decl!)}`);
    await restore();
    expectIntact();
  });

  it("consistent rewrite: the superuser changes a decision of a closed chain and recomputes every hash after it", async () => {
    const restore = await save("chain_id = $1", [chainB]);
    const rows = await chainRows(chainB);
    let prev = rows[149]!.prev_hash;
    await asSuperuser(async (tx) => {
      for (const row of rows.slice(149)) {
        const record = rowToRecord(row);
        if (Number(row.seq) === 150) record.decision = record.decision === "ALLOW" ? "DENY" : "ALLOW";
        const hash = linkHash(prev, chainB, Number(row.seq), record);
        await tx.unsafe(`UPDATE zt_audit.decisions SET decision = $1, prev_hash = decode($2, 'hex'), hash = decode($3, 'hex') WHERE chain_id = $4 AND seq = $5`, [
          record.decision,
          prev,
          hash,
          chainB,
          row.seq,
        ]);
        prev = hash;
      }
    });
    expect(zt(false).code).toBe(0); // every link holds: only a signed head can tell
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(problemOf(run, chainB)).toMatch(/^record \d+ differs from the hash signed in checkpoint probe#\d+ \(chain rewritten\)$/);
    await restore();
    expectIntact();
  });

  it("forged chain: the engine role (INSERT only) declares a chain of its own and fills it", async () => {
    const decl: ChainDeclaration = { chain_id: "probe/20261201T000000Z-f0f0f0", writer_id: "probe", started_at: new Date().toISOString(), hash_version: 2, predecessor: null };
    let prev = declaredGenesis(decl);
    const rows = Array.from({ length: 5 }, (_, i) => {
      const row = recordToRow(serviceRecord({ decision: "ALLOW" }), decl.chain_id, i + 1, prev);
      prev = row.hash;
      return row;
    });
    await declareChains(engine, [decl]);
    await insertRows(engine, rows, true);
    expect(zt(false).code).toBe(0);
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(problemOf(run, decl.chain_id)).toBe("the chain is not declared by any checkpoint (forged chain?)");
    await asSuperuser(async (tx) => {
      await tx`DELETE FROM zt_audit.decisions WHERE chain_id = ${decl.chain_id}`;
      await tx`DELETE FROM zt_audit.chains WHERE chain_id = ${decl.chain_id}`;
    });
    expectIntact();
  });

  it("forged tail: the engine role appends well-chained records to a closed chain", async () => {
    const [head] = await superuser`SELECT seq::int AS seq, encode(hash, 'hex') AS hash FROM zt_audit.decisions WHERE chain_id = ${chainA} ORDER BY seq DESC LIMIT 1`;
    let prev = head!.hash as string;
    const rows = Array.from({ length: 3 }, (_, i) => {
      const row = recordToRow(serviceRecord({ decision: "ALLOW" }), chainA, (head!.seq as number) + i + 1, prev);
      prev = row.hash;
      return row;
    });
    await insertRows(engine, rows, true);
    expect(zt(false).code).toBe(0);
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(problemOf(run, chainA)).toMatch(/^record 401 lies beyond the chain's end \(record 400, closed in checkpoint probe#\d+\): forged tail$/);
    await asSuperuser((tx) => tx`DELETE FROM zt_audit.decisions WHERE chain_id = ${chainA} AND seq > 400`);
    expectIntact();
  });

  it("retention forgery: the owner disables the trigger, deletes a recent record and claims retention dropped it", async () => {
    const [victim] = await superuser`SELECT seq::int AS seq, encode(hash, 'hex') AS hash FROM zt_audit.decisions WHERE chain_id = ${chainA} AND seq = 200`;
    const restore = await save("chain_id = $1 AND seq = 200", [chainA]);
    const fake = "decisions_y2025m01d10";
    await owner.begin(async (tx) => {
      await tx.unsafe("ALTER TABLE zt_audit.decisions DISABLE TRIGGER decisions_append_only");
      await tx`DELETE FROM zt_audit.decisions WHERE chain_id = ${chainA} AND seq = 200`;
      await tx.unsafe("ALTER TABLE zt_audit.decisions ENABLE TRIGGER decisions_append_only");
      await tx`INSERT INTO zt_audit.retention_log (partition_name, chain_id, seqs, row_count) VALUES (${fake}, ${chainA}, '{[200,201)}', 1)`;
      await tx`INSERT INTO zt_audit.retention_anchors (chain_id, seq, hash, partition_name) VALUES (${chainA}, 200, decode(${victim!.hash as string}, 'hex'), ${fake})`;
    });
    for (const run of [zt(false), zt(true)]) {
      expect(run.code).toBe(1);
      expect(problemOf(run, chainA)).toMatch(/^retention claims records 200\.\.200 left with partitions ending by 2025-01-11T00:00:00\.000Z, but they were written after record 199 \(.*\), when a record that old was no longer accepted$/);
    }
    await asSuperuser(async (tx) => {
      await tx`DELETE FROM zt_audit.retention_log WHERE partition_name = ${fake}`;
      await tx`DELETE FROM zt_audit.retention_anchors WHERE partition_name = ${fake}`;
    });
    await restore();
    expectIntact();
  });

  it("detached partition: the owner detaches a day's partition, and its records are missing", async () => {
    const [where] = await superuser`SELECT tableoid::regclass::text AS part FROM zt_audit.decisions WHERE chain_id = ${chainB} AND seq = 1`;
    const part = where!.part as string;
    const [b] = await superuser`SELECT pg_get_expr(relpartbound, oid) AS bound FROM pg_class WHERE oid = ${part}::regclass`;
    await owner.unsafe(`ALTER TABLE zt_audit.decisions DETACH PARTITION ${part}`);
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(problemOf(run, chainB)).toMatch(/missing/);
    await owner.unsafe(`ALTER TABLE zt_audit.decisions ATTACH PARTITION ${part} ${b!.bound as string}`);
    expectIntact();
  });

  it("a checkpoint edited in the directory no longer verifies", async () => {
    const { readdir, readFile, writeFile } = await import("node:fs/promises");
    const wdir = join(dir, "engine", "checkpoints", "probe");
    const file = join(wdir, (await readdir(wdir)).sort()[0]!);
    const original = await readFile(file, "utf8");
    const lines = original.split("\n");
    const first = JSON.parse(lines[0]!) as { checkpoint: { chains: Array<{ seq: number }> } };
    first.checkpoint.chains[0]!.seq += 1;
    lines[0] = JSON.stringify(first);
    await writeFile(file, lines.join("\n"));
    const run = zt(true);
    expect(run.code).toBe(1);
    expect(run.report.problems).toContain("checkpoint probe#1: the signature does not verify (checkpoint modified)");
    await writeFile(file, original);
    expectIntact();
  });
});
