// Tamper evidence: a row edited or deleted by the superuser (who has to switch the
// append-only trigger off to do it) is caught by verify and by `zt audit verify`.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { auditVerifyCommand } from "../../host/cli/audit-verify.js";
import { AuditWriter } from "../../host/audit/writer.js";
import { serviceRecord, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;
let superuser: Sql;
const ids: string[] = [];

beforeAll(async () => {
  dir = await tempDataDir("verify");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  superuser = postgres((audit.connections.superuser as string).replace(/\/postgres$/, "/zt"), { max: 1, onnotice: () => undefined });
  for (let i = 0; i < 500; i++) {
    const r = serviceRecord({ decision: i % 2 ? "ALLOW" : "DENY" });
    ids.push(r.decision_id);
    audit.sink.append(r);
  }
  await audit.sink.flush();
  while (audit.sink.status().queued > 0) await new Promise((r) => setTimeout(r, 10));
});

afterAll(async () => {
  await superuser?.end();
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI entry point, capturing what it prints. */
async function runVerify(env: NodeJS.ProcessEnv, argv: string[] = []): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await auditVerifyCommand(["--format", "json", ...argv], env);
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

async function tamper(statement: string, params: string[]): Promise<void> {
  await superuser.begin(async (tx) => {
    // The append-only trigger refuses even the superuser; bypassing it is deliberate.
    await tx`SET LOCAL session_replication_role = replica`;
    await tx.unsafe(statement, params);
  });
}

describe("verify", () => {
  it("reports intact chains, and zt audit verify exits 0 with the same data directory as the engine", async () => {
    const r = await audit.verify();
    expect(r).toMatchObject({ ok: true, records: 500, chains: 1, broken: [], first_broken: null });
    const cli = await runVerify({ ZT_DATA_DIR: dir });
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.out)).toMatchObject({ ok: true, records: 500 });
  });

  it("the trigger stops the superuser too until it is deliberately bypassed", async () => {
    await expect(superuser`UPDATE zt_audit.decisions SET decision = 'ALLOW' WHERE decision_id = ${ids[10]!}`).rejects.toThrow(/append-only/);
  });

  it("catches a row edited by the superuser and names the first broken link", async () => {
    const [before] = await superuser`SELECT seq::int AS seq FROM zt_audit.decisions WHERE decision_id = ${ids[100]!}`;
    await tamper("UPDATE zt_audit.decisions SET decision = 'ALLOW' WHERE decision_id = $1", [ids[100]!]);
    const r = await audit.verify();
    expect(r.ok).toBe(false);
    expect(r.first_broken).toMatchObject({ decision_id: ids[100], seq: before!.seq, problem: expect.stringMatching(/modified/) });

    const cli = await runVerify({ ZT_AUDIT_DSN: audit.connections.engine });
    expect(cli.code).toBe(1);
    expect(JSON.parse(cli.out).first_broken.decision_id).toBe(ids[100]);
  });

  it("catches a deleted row", async () => {
    // A second writer (its own chain), so this break is not hidden behind the edit above.
    const sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
    const w = new AuditWriter({ sql, spoolDir: join(dir, "spool-second"), writerId: "second", onSpoolFailure: "deny" });
    await w.start();
    const mine = Array.from({ length: 50 }, () => serviceRecord());
    for (const r of mine) w.append(r);
    await w.flush();
    while (w.queueDepth > 0) await new Promise((r) => setTimeout(r, 10));
    await w.close();
    await sql.end();

    await tamper("DELETE FROM zt_audit.decisions WHERE decision_id = $1", [mine[20]!.decision_id]);
    const r = await audit.verify();
    expect(r.broken).toHaveLength(2);
    const b = r.broken.find((x) => x.chain_id === w.chainId);
    expect(b).toMatchObject({ seq: 22, decision_id: mine[21]!.decision_id, problem: "record 21 is missing" });
  });

  it("exits 2 on a usage error, 4 when it cannot read the trail", async () => {
    expect((await runVerify({}, ["--bogus"])).code).toBe(2);
    expect((await runVerify({ ZT_AUDIT_DSN: "postgres://nobody:x@127.0.0.1:1/zt" })).code).toBe(4);
  });
});
