// Shared test helpers of the audit room: records in the seed's shape, chains of them, temp data dirs and a trail per test file.
import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll } from "vitest";
import { genesisHash, recordToRow, type AuditRow } from "../../host/audit/chain.js";
import { type Audit, openAudit } from "../../host/audit/index.js";
import { loadOrCreateCheckpointKey } from "../../host/audit/checkpoint-key.js";
import { ensurePartition, insertRows } from "../../host/audit/insert.js";
import { normalizeRecord } from "../../host/audit/validate.js";
import type { AuditRecord } from "../../host/audit/record.js";
import type { CheckpointPublicKey } from "../../host/audit/threaded-sink.js";
import type { CheckpointOptions } from "../../host/audit/writer-protocol.js";

/** A fresh ZT_DATA_DIR; traversable (o+x) so that, as root, the cluster of zt-postgres stays inside it (and goes with it). */
export async function tempDataDir(tag: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `zt-audit-${tag}-`));
  await chmod(dir, 0o711);
  return dir;
}

export interface ServiceCall {
  source?: string;
  destination?: string;
  port?: number;
  decision?: "ALLOW" | "DENY";
  enforced?: boolean;
  policy?: string | null;
  timestamp?: string;
  reason?: string;
}

export const PV = "sha256:" + "ab".repeat(32);

export function serviceRecord(o: ServiceCall = {}): AuditRecord {
  const decision = o.decision ?? "ALLOW";
  return {
    timestamp: o.timestamp ?? new Date().toISOString(),
    decision,
    source: { spiffe_id: o.source ?? "spiffe://hanzo.ai/do-sfo3/hanzo/gateway", pod: "gateway-7f9b-x2k4", node: "node-1" },
    destination: { spiffe_id: o.destination ?? "spiffe://hanzo.ai/do-sfo3/hanzo/llm", port: o.port ?? 8080 },
    operator: null,
    target: null,
    policy_matched: o.policy === undefined ? "gateway-access/gateway-to-llm" : o.policy,
    latency_us: 42,
    decision_id: randomUUID(),
    enforced: o.enforced ?? true,
    reason: o.reason ?? (decision === "ALLOW" ? "allowed_by_rule" : "default_deny"),
    policy_version: PV,
    origin: "engine",
    caller: null,
  };
}

export function operatorRecord(subject: string, service: string, action: string, decision: "ALLOW" | "DENY" = "ALLOW"): AuditRecord {
  return {
    timestamp: new Date().toISOString(),
    decision,
    source: null,
    destination: null,
    operator: { subject, roles: ["sre"], mfa: true, incident: null },
    target: { service, action },
    policy_matched: decision === "ALLOW" ? "operators/sre" : null,
    latency_us: 17,
    decision_id: randomUUID(),
    enforced: true,
    reason: decision === "ALLOW" ? "allowed_by_rule" : "default_deny",
    policy_version: PV,
    origin: "engine",
    caller: "spiffe://hanzo.ai/do-sfo3/hanzo/bastion",
  };
}

/** Writer-thread checkpoint options for a sink started directly (a key generated into `dir`). */
export async function checkpointSetup(dir: string, intervalMs = 60_000): Promise<{ options: CheckpointOptions; key: CheckpointPublicKey }> {
  const keyFile = join(dir, "checkpoint-key.pem");
  const key = await loadOrCreateCheckpointKey(keyFile);
  return { options: { keyFile, dir: join(dir, "checkpoints"), url: null, intervalMs }, key: { keyId: key.keyId, publicKeyPem: key.publicKeyPem } };
}

/**
 * Stores records of any age straight into the trail as `sql`'s role (the writer refuses records
 * older than 7 days): normalised, chained in a chain of their own, the days' partitions ensured,
 * through the text INSERT (insert.ts's reference path).
 */
export async function storeRecords(sql: Sql, records: readonly AuditRecord[]): Promise<void> {
  const rows = chainedRows(records, `test-${randomUUID()}`);
  for (const day of new Set(rows.map((r) => r.ts.slice(0, 10)))) await ensurePartition(sql, day);
  for (let i = 0; i < rows.length; i += 500) await insertRows(sql, rows.slice(i, i + 500), false);
}

/** A record as the trail stores it (normalised; judged as of its own time: the age bound is the writer's, not the trail's). */
export function normalisedRecord(r: AuditRecord): AuditRecord {
  const v = normalizeRecord(r, "$", Date.parse(r.timestamp));
  if (!v.ok) throw new Error(`test record invalid: ${v.error.path} ${v.error.message}`);
  return v.value;
}

/** `records` as the rows of a chain of their own, each linked to the one before from the chain's genesis. */
export function chainedRows(records: readonly AuditRecord[], chainId: string): AuditRow[] {
  let prev = genesisHash(chainId);
  return records.map((r, i) => {
    const row = recordToRow(normalisedRecord(r), chainId, i + 1, prev);
    prev = row.hash;
    return row;
  });
}

/**
 * The embedded trail for one test file: opened in a fresh data directory before its tests, with
 * one connection as the engine's role, and closed (directory removed) after them.
 */
export function trailForFile(tag: string): { readonly dir: string; readonly audit: Audit; readonly engine: Sql; openAgain(): Promise<void> } {
  let dir = "";
  let audit: Audit | undefined;
  let engine: Sql | undefined;
  const open = async (): Promise<void> => {
    audit = await openAudit({ dataDir: dir, retentionDays: 365, onSpoolFailure: "deny" });
    await engine?.end();
    engine = postgres(audit.connections.engine, { max: 1, onnotice: () => undefined });
  };
  beforeAll(async () => {
    dir = await tempDataDir(tag);
    await open();
  });
  afterAll(async () => {
    await engine?.end();
    await audit?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    get audit() {
      return audit!;
    },
    get engine() {
      return engine!;
    },
    /** Opens the trail again in the same directory, after a test closed it (e.g. to replay a spool it wrote). */
    openAgain: open,
  };
}
