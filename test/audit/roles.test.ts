// The roles as docs/audit.md ("Roles") describes them, one case per role and action: what
// each role is refused, and what the owner can do (PostgreSQL gives a table's owner
// ALTER, DETACH and DROP; the docs say so, and verify catches the effect: tamper.test.ts).
import { rm } from "node:fs/promises";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { serviceRecord, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;
const sql: Record<"engine" | "maintenance" | "owner", Sql> = {} as Record<"engine" | "maintenance" | "owner", Sql>;
let partition: string;
let decisionId: string;

beforeAll(async () => {
  dir = await tempDataDir("roles");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  const r = serviceRecord();
  decisionId = r.decision_id;
  audit.sink.append(r);
  await audit.sink.flush();
  while (audit.sink.status().queued > 0) await new Promise((res) => setTimeout(res, 10));
  const opts = { max: 1, onnotice: () => undefined, fetch_types: false };
  sql.engine = postgres(audit.connections.engine, opts);
  sql.maintenance = postgres(audit.connections.maintenance as string, opts);
  sql.owner = postgres(audit.connections.owner as string, opts);
  const [p] = await sql.engine`SELECT tableoid::regclass::text AS p FROM zt_audit.decisions WHERE decision_id = ${decisionId}`;
  partition = p!.p as string;
});

afterAll(async () => {
  await Promise.all(Object.values(sql).map((s) => s.end()));
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

class Rollback extends Error {}

/** Runs a statement as a role inside a transaction that is always rolled back; resolves to the error, or null. */
async function attempt(role: keyof typeof sql, statement: string): Promise<{ code?: string; message: string } | null> {
  try {
    await sql[role].begin(async (tx) => {
      await tx.unsafe(statement.replaceAll("$PART", partition).replaceAll("$ID", decisionId));
      throw new Rollback();
    });
  } catch (e) {
    if (e instanceof Rollback) return null;
    return e as { code?: string; message: string };
  }
  return null;
}

const APPEND_ONLY = /append-only/;
const NO_PRIVILEGE = /permission denied|must be owner|must be a member/;

// [role, action, statement, what happens]
const REFUSED: Array<[keyof typeof sql, string, string, RegExp]> = [
  ["engine", "UPDATE a record", "UPDATE zt_audit.decisions SET reason = 'x' WHERE decision_id = '$ID'", NO_PRIVILEGE],
  ["engine", "DELETE a record", "DELETE FROM zt_audit.decisions WHERE decision_id = '$ID'", NO_PRIVILEGE],
  ["engine", "TRUNCATE the trail", "TRUNCATE zt_audit.decisions", NO_PRIVILEGE],
  ["engine", "DROP a partition", "DROP TABLE $PART", NO_PRIVILEGE],
  ["engine", "DETACH a partition", "ALTER TABLE zt_audit.decisions DETACH PARTITION $PART", NO_PRIVILEGE],
  ["engine", "disable the append-only trigger", "ALTER TABLE zt_audit.decisions DISABLE TRIGGER decisions_append_only", NO_PRIVILEGE],
  ["engine", "claim a retention gap", "INSERT INTO zt_audit.retention_log (partition_name, chain_id, seqs, row_count) VALUES ('x', 'y', '{}', 0)", NO_PRIVILEGE],
  ["engine", "write a retention anchor", "INSERT INTO zt_audit.retention_anchors (chain_id, seq, hash, partition_name) VALUES ('y', 1, '\\x00', 'x')", NO_PRIVILEGE],
  ["engine", "change a chain declaration", "UPDATE zt_audit.chains SET writer_id = 'x'", NO_PRIVILEGE],
  ["engine", "delete a chain declaration", "DELETE FROM zt_audit.chains", NO_PRIVILEGE],
  ["engine", "drop partitions (retention)", "SELECT * FROM zt_audit.drop_expired_partitions(1)", NO_PRIVILEGE],
  ["maintenance", "INSERT a record", "INSERT INTO zt_audit.decisions SELECT * FROM zt_audit.decisions LIMIT 1", NO_PRIVILEGE],
  ["maintenance", "UPDATE a record", "UPDATE zt_audit.decisions SET reason = 'x' WHERE decision_id = '$ID'", NO_PRIVILEGE],
  ["maintenance", "DELETE a record", "DELETE FROM zt_audit.decisions WHERE decision_id = '$ID'", NO_PRIVILEGE],
  ["maintenance", "TRUNCATE the trail", "TRUNCATE zt_audit.decisions", NO_PRIVILEGE],
  ["maintenance", "DROP a partition directly", "DROP TABLE $PART", NO_PRIVILEGE],
  ["maintenance", "disable the append-only trigger", "ALTER TABLE zt_audit.decisions DISABLE TRIGGER decisions_append_only", NO_PRIVILEGE],
  ["maintenance", "declare a chain", "INSERT INTO zt_audit.chains (chain_id, hash_version) VALUES ('x', 1)", NO_PRIVILEGE],
  ["maintenance", "claim a retention gap", "INSERT INTO zt_audit.retention_log (partition_name, chain_id, seqs, row_count) VALUES ('x', 'y', '{}', 0)", NO_PRIVILEGE],
  ["owner", "UPDATE a record", "UPDATE zt_audit.decisions SET reason = 'x' WHERE decision_id = '$ID'", APPEND_ONLY],
  ["owner", "DELETE a record", "DELETE FROM zt_audit.decisions WHERE decision_id = '$ID'", APPEND_ONLY],
  ["owner", "TRUNCATE the trail", "TRUNCATE zt_audit.decisions", APPEND_ONLY],
  ["owner", "TRUNCATE one partition", "TRUNCATE $PART", APPEND_ONLY],
  ["owner", "change a chain declaration", "UPDATE zt_audit.chains SET writer_id = 'x'", APPEND_ONLY],
  ["owner", "TRUNCATE the chain declarations", "TRUNCATE zt_audit.chains", APPEND_ONLY],
  ["owner", "delete a retention claim", "INSERT INTO zt_audit.retention_log (partition_name, chain_id, seqs, row_count) VALUES ('x', 'y', '{}', 0); DELETE FROM zt_audit.retention_log", APPEND_ONLY],
  ["owner", "TRUNCATE the retention anchors", "TRUNCATE zt_audit.retention_anchors", APPEND_ONLY],
];

// What the owner role can do, because PostgreSQL lets a table's owner: docs/audit.md says so.
const OWNER_CAN: Array<[string, string]> = [
  ["disable the append-only trigger", "ALTER TABLE zt_audit.decisions DISABLE TRIGGER decisions_append_only"],
  ["detach a partition", "ALTER TABLE zt_audit.decisions DETACH PARTITION $PART"],
  ["drop a partition", "DROP TABLE $PART"],
  ["claim a retention gap", "INSERT INTO zt_audit.retention_log (partition_name, chain_id, seqs, row_count) VALUES ('x', 'y', '{}', 0)"],
];

describe("roles", () => {
  for (const [role, action, statement, refusal] of REFUSED) {
    it(`${role} role: cannot ${action}`, async () => {
      const e = await attempt(role, statement);
      expect(e, `${role} could ${action}`).not.toBeNull();
      expect(e?.code).toBe("42501");
      expect(e?.message).toMatch(refusal);
    });
  }

  for (const [action, statement] of OWNER_CAN) {
    it(`owner role: can ${action} (PostgreSQL's owner rights; verify reports the effect)`, async () => {
      expect(await attempt("owner", statement)).toBeNull();
    });
  }

  it("engine role: can INSERT and read records, declare chains and create partitions, nothing more", async () => {
    expect(await attempt("engine", "SELECT count(*) FROM zt_audit.decisions")).toBeNull();
    expect(await attempt("engine", "INSERT INTO zt_audit.chains (chain_id, hash_version) VALUES ('roles-test', 1)")).toBeNull();
    expect(await attempt("engine", "SELECT zt_audit.ensure_partition(now())")).toBeNull();
  });

  it("maintenance role: can run retention and create partitions", async () => {
    expect(await attempt("maintenance", "SELECT * FROM zt_audit.drop_expired_partitions(365)")).toBeNull();
    expect(await attempt("maintenance", "SELECT zt_audit.ensure_partition(now())")).toBeNull();
  });
});
