// A `zt serve` process on a shared PostgreSQL for the bench (replicas.ts, build.ts): the seed
// policies copied into its own policy directory, ready once it logs "zt engine listening".
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { servicePolicy } from "../test/support/policy-text.js";

export const TOKEN = "bench-replicas-token-0123456789abcdef";
const MAIN = fileURLToPath(new URL("../host/cli/main.js", import.meta.url));
const POLICIES = fileURLToPath(new URL("../../policies", import.meta.url));

export interface Replica {
  child: ChildProcess;
  api: string;
  health: string;
}

/** `env`: extra settings (ZT_BUILD_INLINE, limits) over the defaults. */
export function startReplica(id: string, dir: string, dsns: { engine: string; owner: string }, env: Record<string, string> = {}): Promise<Replica> {
  mkdirSync(join(dir, "policies"), { recursive: true });
  cpSync(POLICIES, join(dir, "policies"), { recursive: true });
  const child = spawn(process.execPath, [MAIN, "serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/root",
      ZT_HOST: "127.0.0.1",
      ZT_PORT: "0",
      ZT_HEALTH_PORT: "0",
      ZT_REPLICA_ID: id,
      ZT_POLICY_PATH: join(dir, "policies"),
      ZT_DATA_DIR: join(dir, "data"),
      ZT_AUDIT_DSN: dsns.engine,
      ZT_AUDIT_MIGRATE_DSN: dsns.owner,
      ZT_ADMIN_TOKEN: TOKEN,
      ZT_LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let buf = "";
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const o = JSON.parse(line) as { msg?: string; api?: string; health?: string };
          if (o.msg === "zt engine listening") resolve({ child, api: o.api!, health: o.health! });
        } catch {
          // not a log line
        }
      }
    });
    child.once("exit", (code) => reject(new Error(`replica ${id} exited ${code}: ${err.slice(-2000)}`)));
  });
}

export function stopReplica(r: Replica): Promise<void> {
  return new Promise<void>((resolve) => {
    if (r.child.exitCode !== null) return resolve();
    r.child.once("exit", () => resolve());
    r.child.kill("SIGTERM");
  });
}

/** A one-rule policy `name` whose port changes with `i`: each write is a new version. */
export function churnPolicy(name: string, i: number): string {
  return servicePolicy(name, "chat", "postgres", 10_000 + i);
}
