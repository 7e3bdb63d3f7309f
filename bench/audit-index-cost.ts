// What an index or trigger on zt_audit.decisions costs PostgreSQL per stored row, measured on the
// writer's own ingest path (a binary COPY of 1,000 rows per batch, as the engine role):
//   node dist/bench/audit-index-cost.js [rounds] [batches-per-measure]
// Variants alternate round by round on one embedded server (A/B in the same minutes); the figure
// is the COPY backend's CPU (utime + stime from /proc/<pid>/stat) per row, median over rounds.
// Two row mixes: the audit-query trail's (2 % denied by a rule, 6 % denied by default) and a
// worst case where every row is a rule's DENY (every row enters a DENY-only partial index).
// Not a section of `npm run bench`: it decides whether an index pays, docs/audit.md quotes it.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { genesisHash, recordToRow, type AuditRow } from "../host/audit/chain.js";
import { openAudit } from "../host/audit/index.js";
import { insertRows } from "../host/audit/insert.js";
import type { AuditRecord } from "../host/audit/record.js";
import { normalizeRecord } from "../host/audit/validate.js";

interface Variant {
  name: string;
  /** Run as the owner before the variant's measurement; `undo` after it. */
  setup: string;
  undo: string;
}

const DENY_INDEX = `CREATE INDEX IF NOT EXISTS decisions_deny_policy_idx ON zt_audit.decisions (policy_matched COLLATE "C", ts DESC) WITH (deduplicate_items = off) WHERE decision = 'DENY' AND policy_matched IS NOT NULL`;

/** The schema as migrated, and without each of the two things issue 18's second session added to the ingest path. */
const VARIANTS: Variant[] = [
  { name: "as migrated (DENY index, late-hour trigger)", setup: "", undo: "" },
  { name: "without the DENY index (migration 5)", setup: "DROP INDEX zt_audit.decisions_deny_policy_idx", undo: DENY_INDEX },
  {
    name: "without the late-hour trigger (migration 6)",
    setup: "ALTER TABLE zt_audit.decisions DISABLE TRIGGER decisions_late_hour",
    undo: "ALTER TABLE zt_audit.decisions ENABLE TRIGGER decisions_late_hour",
  },
];

const PV = "sha256:" + "ab".repeat(32);

function record(i: number, mix: "trail" | "all-deny"): AuditRecord {
  const u = ((i * 2654435761) >>> 0) / 2 ** 32;
  const ruleDeny = mix === "all-deny" || u < 0.02;
  const defaultDeny = !ruleDeny && u < 0.08;
  const ns = ["hanzo", "iam", "llm", "chat", "billing", "search"][i % 6]!;
  return {
    timestamp: new Date().toISOString(),
    decision: ruleDeny || defaultDeny ? "DENY" : "ALLOW",
    source: { spiffe_id: `spiffe://hanzo.ai/do-sfo3/${ns}/api-${i % 300}`, pod: `api-${i % 4096}`, node: `node-${i % 40}` },
    destination: { spiffe_id: `spiffe://hanzo.ai/do-sfo3/${ns}/db-${i % 17}`, port: 8080 },
    operator: null,
    target: null,
    policy_matched: ruleDeny ? `${ns}-access/deny-chat` : defaultDeny ? null : `${ns}-access/api-${i % 300}-to-db-${i % 17}`,
    latency_us: 40 + (i % 100),
    decision_id: randomUUID(),
    enforced: true,
    reason: ruleDeny ? "denied_by_rule" : defaultDeny ? "default_deny" : "allowed_by_rule",
    policy_version: PV,
    origin: "engine",
    caller: null,
  };
}

function batch(n: number, start: number, mix: "trail" | "all-deny", chainId: string, seq: number, prev: string): AuditRow[] {
  const rows: AuditRow[] = [];
  for (let i = 0; i < n; i++) {
    const v = normalizeRecord(record(start + i, mix));
    if (!v.ok) throw new Error(v.error.message);
    const row = recordToRow(v.value, chainId, seq + i, prev);
    prev = row.hash;
    rows.push(row);
  }
  return rows;
}

/** utime + stime of a process in µs (clock ticks of 1/100 s). */
function cpuMicros(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 7);
  const batches = Number(process.argv[3] ?? 40);
  const dir = await mkdtemp(join(tmpdir(), "zt-bench-index-cost-"));
  const audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
  const engine: Sql = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
  const owner: Sql = postgres(audit.connections.owner as string, { max: 1, onnotice: () => undefined });
  try {
    const [{ pid }] = (await engine`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
    const results = new Map<string, number[]>();
    let seq = 1;
    const chainId = `bench-index-cost-${randomUUID()}`;
    let prev = genesisHash(chainId);
    let n = 0;
    // Warm-up: partitions, caches, the driver's statements.
    for (let b = 0; b < 10; b++) {
      const rows = batch(1000, n, "trail", chainId, seq, prev);
      await insertRows(engine, rows, true);
      seq += rows.length;
      n += rows.length;
      prev = rows[rows.length - 1]!.hash;
    }
    for (let r = 0; r < rounds; r++) {
      for (const mix of ["trail", "all-deny"] as const) {
        // A different order each round: no variant always runs first or last.
        for (const v of VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]!)) {
          if (v.setup) await owner.unsafe(v.setup);
          // Built before the measured COPYs, each batch chained to the one before.
          const all: AuditRow[][] = [];
          for (let b = 0; b < batches; b++) {
            const rows = batch(1000, n, mix, chainId, seq, prev);
            all.push(rows);
            seq += rows.length;
            n += rows.length;
            prev = rows[rows.length - 1]!.hash;
          }
          const c0 = cpuMicros(pid);
          for (const rows of all) await insertRows(engine, rows, true);
          const us = (cpuMicros(pid) - c0) / (batches * 1000);
          const key = `${mix}: ${v.name}`;
          results.set(key, [...(results.get(key) ?? []), us]);
          if (v.undo) await owner.unsafe(v.undo);
        }
      }
      process.stderr.write(`round ${r + 1} of ${rounds}\n`);
    }
    process.stdout.write(`PostgreSQL CPU per row (µs), binary COPY of 1,000-row batches as the engine role, ${rounds} rounds x ${batches} batches per variant, load average ${os.loadavg()[0]!.toFixed(1)}\n`);
    for (const [k, xs] of results) process.stdout.write(`${k}: median ${median(xs).toFixed(2)} (runs ${xs.map((x) => x.toFixed(2)).join(", ")})\n`);
  } finally {
    await Promise.all([engine.end({ timeout: 5 }), owner.end({ timeout: 5 })]);
    await audit.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
