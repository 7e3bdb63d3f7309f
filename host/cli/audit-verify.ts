// `zt audit verify`: checks every hash chain of the audit trail and prints a JSON report.
// Same configuration as the engine: ZT_AUDIT_DSN (a role with SELECT on the audit tables),
// or the embedded cluster in ZT_DATA_DIR (default ./data), started if the engine is not
// running and stopped again afterwards. Exit codes: 0 intact, 1 broken chain, 2 usage or
// connection error.
import { join, resolve } from "node:path";
import postgres from "postgres";
import { hasEmbeddedCluster, startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../audit/embedded.js";
import { bootstrapRoles } from "../audit/roles.js";
import { verifyChains } from "../audit/verify.js";

const USAGE = `usage: zt audit verify [--dsn <postgres-url>] [--data-dir <dir>]
  Checks the hash chains of the audit trail; prints a JSON report.
  --dsn       default: $ZT_AUDIT_DSN; without it the embedded cluster in the data directory is used
  --data-dir  default: $ZT_DATA_DIR or ./data
  exit 0: all chains intact, 1: a chain is broken (first broken link reported), 2: usage or connection error`;

export async function auditVerifyCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let dsn = env.ZT_AUDIT_DSN || undefined;
  let dataDir = resolve(env.ZT_DATA_DIR || "./data");
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      process.stdout.write(USAGE + "\n");
      return 0;
    }
    const v = argv[i + 1];
    if ((a === "--dsn" || a === "--data-dir") && v !== undefined) {
      if (a === "--dsn") dsn = v;
      else dataDir = resolve(v);
      i++;
      continue;
    }
    process.stderr.write(`zt audit verify: unexpected argument "${a}"\n${USAGE}\n`);
    return 2;
  }

  let embedded: EmbeddedPostgresHandle | null = null;
  try {
    if (!dsn) {
      if (!hasEmbeddedCluster(join(dataDir, "pg"))) {
        process.stderr.write(`zt audit verify: no ZT_AUDIT_DSN and no embedded cluster in ${join(dataDir, "pg")}\n`);
        return 2;
      }
      embedded = await startEmbeddedPostgres({ dataDir: join(dataDir, "pg"), embeddedDir: env.ZT_AUDIT_EMBEDDED_DIR });
      dsn = (await bootstrapRoles(embedded.dsn, dataDir)).engine;
    }
    const sql = postgres(dsn, { max: 1, connect_timeout: 10, onnotice: () => undefined, fetch_types: false });
    try {
      const report = await verifyChains(sql);
      process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      return report.ok ? 0 : 1;
    } finally {
      await sql.end({ timeout: 5 });
    }
  } catch (e) {
    process.stderr.write(`zt audit verify: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  } finally {
    // A cluster the running engine owns is left alone; one started just for this check is stopped.
    if (embedded && !embedded.adopted) await embedded.stop();
  }
}
