// Shared test helpers of the audit room: records in the seed's shape and temp data dirs.
import { randomUUID } from "node:crypto";
import { chmod, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sql } from "postgres";
import { genesisHash, recordToRow } from "../../host/audit/chain.js";
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
  const chainId = `test-${randomUUID()}`;
  let prev = genesisHash(chainId);
  const rows = records.map((r, i) => {
    // Judged as of its own time: the age bound is the writer's, not the trail's.
    const v = normalizeRecord(r, "$", Date.parse(r.timestamp));
    if (!v.ok) throw new Error(`test record invalid: ${v.error.path} ${v.error.message}`);
    const row = recordToRow(v.value, chainId, i + 1, prev);
    prev = row.hash;
    return row;
  });
  for (const day of new Set(rows.map((r) => r.ts.slice(0, 10)))) await ensurePartition(sql, day);
  for (let i = 0; i < rows.length; i += 500) await insertRows(sql, rows.slice(i, i + 500), false);
}
