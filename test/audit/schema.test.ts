// Migrations, roles and permissions, partitions and retention, against a real embedded
// PostgreSQL (one cluster for the file).
import { rm } from "node:fs/promises";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAudit, type Audit } from "../../host/audit/index.js";
import { LATEST_VERSION, migrate } from "../../host/audit/migrations.js";
import { runRetention } from "../../host/audit/maintenance.js";
import { type AuditQuery, auditQuerySql, hasPrefixFilter, parseAuditQuery, RARE_SLICE_SETTINGS, rarePrefixSlices, timeSlices } from "../../host/audit/query.js";
import { verifyChains } from "../../host/audit/verify.js";
import { serviceRecord, tempDataDir } from "./helpers.js";

let dir: string;
let audit: Audit;
let engine: Sql;
let owner: Sql;
let superuser: Sql;

const quiet = { onnotice: () => undefined, max: 1 };

beforeAll(async () => {
  dir = await tempDataDir("schema");
  audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  engine = postgres(audit.connections.engine, quiet);
  owner = postgres(audit.connections.owner as string, quiet);
  superuser = postgres((audit.connections.superuser as string).replace(/\/postgres$/, "/zt"), quiet);
});

afterAll(async () => {
  await Promise.all([engine?.end(), owner?.end(), superuser?.end()]);
  await audit?.close();
  await rm(dir, { recursive: true, force: true });
});

async function appendAndWait(records: ReturnType<typeof serviceRecord>[]): Promise<void> {
  for (const r of records) audit.sink.append(r);
  await audit.sink.flush();
  while (audit.sink.status().queued > 0) await new Promise((r) => setTimeout(r, 10));
}

describe("migrations", () => {
  it("ran from an empty database at start and a re-run is a no-op", async () => {
    const [v] = await owner`SELECT max(version) AS v, count(*)::int AS n FROM zt_audit.schema_migrations`;
    expect(v).toEqual({ v: LATEST_VERSION, n: LATEST_VERSION });
    const again = await migrate(owner);
    expect(again.applied).toEqual([]);
    const [n] = await owner`SELECT count(*)::int AS n FROM zt_audit.schema_migrations`;
    expect(n?.n).toBe(LATEST_VERSION);
  });

  it("creates the partitioned table, its indexes and the day partitions", async () => {
    const [t] = await superuser`SELECT relkind FROM pg_class WHERE oid = 'zt_audit.decisions'::regclass`;
    expect(t?.relkind).toBe("p");
    const idx = await superuser`SELECT indexname FROM pg_indexes WHERE schemaname = 'zt_audit' AND tablename = 'decisions' ORDER BY 1`;
    expect(idx.map((r) => r.indexname)).toEqual([
      "decisions_chain_idx",
      "decisions_deny_policy_idx",
      "decisions_dest_idx",
      "decisions_incident_idx",
      "decisions_pkey",
      "decisions_policy_idx",
      "decisions_reason_idx",
      "decisions_source_idx",
      "decisions_subject_idx",
    ]);
    const report = await audit.runMaintenance();
    expect("partitions" in report && report.partitions).toHaveLength(3);
    const parts = await superuser`SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'zt_audit.decisions'::regclass`;
    expect(parts[0]?.n).toBeGreaterThanOrEqual(3);
  });
});

describe("query plans", () => {
  // The table is tiny, so the planner would scan it anyway: with sequential scans off, a
  // plan still without the index means the index cannot serve the filter. `generic`: the plan
  // the engine runs (query.ts queryAudit): a generic plan, made without the parameters' values,
  // or for a prefix filter a plan of the first time slice.
  async function plan(params: Record<string, string[]>, generic = false): Promise<string> {
    const q = parseAuditQuery(params);
    if (!q.ok) throw new Error(JSON.stringify(q));
    const sliced = generic && hasPrefixFilter(q.value);
    // A reason prefix's slices keep generic plans of their own shape (RARE_SLICE_SETTINGS).
    const genericSlice = sliced && rarePrefixSlices(q.value);
    const { text, params: values } = auditQuerySql(q.value, sliced ? timeSlices(q.value)[0]! : null);
    if (sliced && !genericSlice) generic = false;
    return superuser.begin(async (tx) => {
      await tx`SET LOCAL enable_seqscan = off`;
      let rows: { "QUERY PLAN": string }[];
      if (generic) {
        if (genericSlice) {
          await tx.unsafe(RARE_SLICE_SETTINGS);
        } else {
          await tx`SET LOCAL plan_cache_mode = force_generic_plan`;
          await tx`SET LOCAL enable_sort = off`;
        }
        await tx.unsafe(`PREPARE plan_check AS ${text}`);
        const lit = (v: unknown): string => (typeof v === "string" ? `'${v.replace(/'/g, "''")}'` : String(v));
        rows = await tx.unsafe(`EXPLAIN EXECUTE plan_check${values.length ? `(${values.map(lit).join(", ")})` : ""}`);
        await tx`DEALLOCATE plan_check`;
      } else {
        rows = await tx.unsafe(`EXPLAIN ${text}`, values);
      }
      const out = rows.map((r) => r["QUERY PLAN"]).join("\n");
      if (process.env.ZT_TEST_LOG) console.log(out);
      return out;
    });
  }

  // "Index Cond: ((source_spiffe_id)::text = '...'::text)", or >= / < for a pattern's prefix
  // (a constant, or a parameter $n in a generic plan).
  const cond = (column: string): RegExp => new RegExp(`Index Cond: .*\\b${column}\\)(::text)? (=|>=|~>=~) `);
  const filters: Array<[Record<string, string[]>, string]> = [
    [{ source: ["spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway"] }, "source_spiffe_id"],
    [{ source: ["spiffe://hanzo.ai/hanzo-k8s/*/gateway"] }, "source_spiffe_id"],
    [{ destination: ["spiffe://hanzo.ai/hanzo-k8s/**"] }, "dest_spiffe_id"],
    [{ destination: ["spiffe://hanzo.ai/*/hanzo/llm"] }, "dest_spiffe_id"],
    [{ policy: ["hanzo-core-policy"] }, "policy_matched"],
    [{ policy: ["hanzo-core-policy/rule-2"] }, "policy_matched"],
    [{ subject: ["alice@hanzo.ai"] }, "operator_subject"],
    [{ incident: ["INC-1234"] }, "operator_incident"],
    [{ reason: ["condition_failed:*"] }, "reason"],
    [{ reason: ["denied_by_rule"] }, "reason"],
  ];

  function parseQuery(params: Record<string, string[]>): AuditQuery {
    const q = parseAuditQuery(params);
    if (!q.ok) throw new Error(JSON.stringify(q));
    return q.value;
  }

  it("every filter, exact or pattern, is an index condition (not a filter over a full index scan)", async () => {
    for (const [params, column] of filters) expect(await plan(params), JSON.stringify(params)).toMatch(cond(column));
  });

  it("the generic plans the engine runs keep every equality filter an index condition", async () => {
    // Prefix filters are planned per time slice with their values instead (query.ts queryAudit).
    for (const [params, column] of filters.filter(([p]) => !hasPrefixFilter(parseQuery(p)))) {
      expect(await plan(params, true), JSON.stringify(params)).toMatch(cond(column));
    }
  });

  it("a prefix filter's time slice is pruned to its partitions at planning", async () => {
    await owner`SELECT zt_audit.ensure_partition(${new Date(Date.now() - 10 * 24 * 3600_000).toISOString()}::timestamptz)`;
    const out = await plan({ source: ["spiffe://hanzo.ai/hanzo-k8s/*/gateway"] }, true);
    const scanned = new Set([...out.matchAll(/on (decisions_y\d{4}m\d{2}d\d{2})\b/g)].map((m) => m[1]));
    const [n] = await superuser`SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'zt_audit.decisions'::regclass`;
    expect(scanned.size).toBeGreaterThan(0);
    expect(scanned.size).toBeLessThan(n!.n);
  });

  it("a prefix a partial index of rare rows serves keeps a generic plan per slice, a bitmap scan of the index's range", async () => {
    const q = parseQuery({ reason: ["condition_failed:*"] });
    expect(rarePrefixSlices(q)).toBe(true);
    expect(rarePrefixSlices(parseQuery({ reason: ["default_*"] }))).toBe(false);
    expect(rarePrefixSlices(parseQuery({ reason: ["condition_failed:*"], source: ["spiffe://hanzo.ai/hanzo-k8s/*/gateway"] }))).toBe(false);
    expect(rarePrefixSlices(parseQuery({ policy: ["hanzo-core-policy"], decision: ["DENY"] }))).toBe(true);
    expect(rarePrefixSlices(parseQuery({ policy: ["hanzo-core-policy"] }))).toBe(false);
    expect(rarePrefixSlices(parseQuery({ policy: ["hanzo-core-policy"], decision: ["ALLOW"] }))).toBe(false);
    await owner`SELECT zt_audit.ensure_partition(${new Date(Date.now() - 20 * 24 * 3600_000).toISOString()}::timestamptz)`;
    const out = await plan({ reason: ["condition_failed:*"] }, true);
    expect(out).toMatch(/Bitmap Index Scan on decisions_y\S+_reason_ts_idx/);
    expect(out).toMatch(cond("reason"));
    // Its generic plan covers every partition and prunes to the slice's at execution.
    expect(out).toMatch(/Subplans Removed: [1-9]/);
  });

  it("policy with decision=DENY reads the DENY-only partial index, without a filter on the decision", async () => {
    for (const policy of ["hanzo-core-policy", "hanzo-core-policy/rule-2"]) {
      for (const generic of [false, true]) {
        const out = await plan({ policy: [policy], decision: ["DENY"] }, generic);
        expect(out, `${policy} generic=${generic}`).toMatch(cond("policy_matched"));
        expect(out, `${policy} generic=${generic}`).not.toMatch(/Filter: .*decision/);
      }
    }
  });

  it("the partial reason index is left to the newest-first scan for the reasons it does not hold", async () => {
    const q = parseAuditQuery({ reason: ["default_*"] });
    if (!q.ok) throw new Error(JSON.stringify(q));
    expect(auditQuerySql(q.value).text).not.toMatch(/NOT IN/);
    expect(await plan({ reason: ["default_deny"] }, true)).not.toMatch(/decisions_reason_idx|reason_ts_idx/);
  });

  it("a time window prunes partitions at execution in the generic plan", async () => {
    // Partitions for today and the next two days (maintenance); a window of today prunes the others.
    await audit.runMaintenance();
    const today = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()));
    const out = await plan({ since: [today.toISOString()], until: [new Date(today.getTime() + 24 * 3600_000).toISOString()] }, true);
    expect(out).toMatch(/Subplans Removed: [1-9]/);
  });
});

describe("permissions", () => {
  it("the engine role can INSERT and SELECT but not UPDATE, DELETE or TRUNCATE", async () => {
    const rec = serviceRecord();
    await appendAndWait([rec]);
    const rows = await engine`SELECT decision FROM zt_audit.decisions WHERE decision_id = ${rec.decision_id}`;
    expect(rows).toHaveLength(1);
    await expect(engine`UPDATE zt_audit.decisions SET decision = 'ALLOW' WHERE decision_id = ${rec.decision_id}`).rejects.toMatchObject({ code: "42501" });
    await expect(engine`DELETE FROM zt_audit.decisions WHERE decision_id = ${rec.decision_id}`).rejects.toMatchObject({ code: "42501" });
    await expect(engine`TRUNCATE zt_audit.decisions`).rejects.toMatchObject({ code: "42501" });
    await expect(engine`SELECT zt_audit.drop_expired_partitions(1)`).rejects.toMatchObject({ code: "42501" });
    await expect(engine`DROP TABLE zt_audit.decisions`).rejects.toMatchObject({ code: "42501" });
    const still = await engine`SELECT count(*)::int AS n FROM zt_audit.decisions WHERE decision_id = ${rec.decision_id}`;
    expect(still[0]?.n).toBe(1);
  });

  it("the append-only trigger refuses UPDATE, DELETE and TRUNCATE even for the owner", async () => {
    const [row] = await owner`SELECT decision_id FROM zt_audit.decisions LIMIT 1`;
    expect(row).toBeDefined();
    await expect(owner`UPDATE zt_audit.decisions SET reason = 'x' WHERE decision_id = ${row!.decision_id}`).rejects.toThrow(/append-only/);
    await expect(owner`DELETE FROM zt_audit.decisions WHERE decision_id = ${row!.decision_id}`).rejects.toThrow(/append-only/);
    await expect(owner`TRUNCATE zt_audit.decisions`).rejects.toThrow(/append-only/);
    const [p] = await owner`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'zt_audit.decisions'::regclass LIMIT 1`;
    await expect(owner.unsafe(`TRUNCATE zt_audit.${p!.relname}`)).rejects.toThrow(/append-only/);
  });

  it("the maintenance role cannot change rows either", async () => {
    const maint = postgres(audit.connections.maintenance as string, quiet);
    try {
      await expect(maint`DELETE FROM zt_audit.decisions`).rejects.toMatchObject({ code: "42501" });
      await expect(maint`INSERT INTO zt_audit.retention_log (partition_name, chain_id, seqs, row_count) VALUES ('x', 'y', '{}', 0)`).rejects.toMatchObject({ code: "42501" });
    } finally {
      await maint.end();
    }
  });
});

describe("partitions and retention", () => {
  it("drops only day partitions older than the retention period, and verify still holds across the gaps", async () => {
    const day = 24 * 3600_000;
    const now = Date.now();
    // Records are accepted up to 7 days after their decision; a 2-day retention drops the older days.
    const old = [5, 4, 3].map((d) => serviceRecord({ timestamp: new Date(now - d * day).toISOString() }));
    const recent = [1, 0.5, 0].map((d) => serviceRecord({ timestamp: new Date(now - d * day).toISOString() }));
    // Old and recent records interleave in one chain, so dropping the old days cuts it in the middle.
    await appendAndWait([old[0]!, recent[0]!, old[1]!, recent[1]!, old[2]!, recent[2]!]);
    const partOf = (r: { timestamp: string }): string => `decisions_y${r.timestamp.slice(0, 4)}m${r.timestamp.slice(5, 7)}d${r.timestamp.slice(8, 10)}`;
    const exists = await superuser`SELECT to_regclass(${"zt_audit." + partOf(old[0]!)})::text AS r`;
    expect(exists[0]?.r).toBe(`zt_audit.${partOf(old[0]!)}`);

    const maint = postgres(audit.connections.maintenance as string, quiet);
    let dropped: string[];
    try {
      dropped = (await runRetention(maint, 2)).dropped.map((d) => d.partition);
    } finally {
      await maint.end();
    }
    for (const r of old) expect(dropped).toContain(partOf(r));
    // Nothing younger than the retention period is dropped.
    for (const p of dropped) {
      const m = /^decisions_y(\d{4})m(\d{2})d(\d{2})$/.exec(p)!;
      expect(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1)).toBeLessThanOrEqual(now - 2 * day);
    }
    const left = await engine`SELECT decision_id::text AS id FROM zt_audit.decisions WHERE decision_id = ANY(${[...old, ...recent].map((r) => r.decision_id)}::uuid[])`;
    expect(new Set(left.map((r) => r.id))).toEqual(new Set(recent.map((r) => r.decision_id)));

    const v = await verifyChains(audit.query, { retentionDays: 2 });
    expect(v.broken).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.retention_gaps).toBeGreaterThanOrEqual(3);
    // Checked against a 365-day retention period, the same drops are claims verify refuses.
    const strict = await verifyChains(audit.query, { retentionDays: 365 });
    expect(strict.ok).toBe(false);
    expect(strict.broken[0]?.problem).toMatch(/inside the 365-day retention period/);
  });

  it("refuses a retention period under one day", async () => {
    const maint = postgres(audit.connections.maintenance as string, quiet);
    try {
      await expect(maint`SELECT * FROM zt_audit.drop_expired_partitions(0)`).rejects.toThrow(/at least one day/);
    } finally {
      await maint.end();
    }
  });
});
