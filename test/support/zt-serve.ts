// `zt serve` as a real child process (through tsx, so tests need no build), watched as
// test/cli/serve-process.ts does, with its log lines parsed and a stop().
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type ServeProcess as Watched, untilListening, watchServe } from "../cli/serve-process.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = 'import("./host/cli/serve.ts").then((m) => m.serveCommand(process.argv.slice(1))).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 4; })';

export interface ServeProcess extends Watched {
  api: string;
  health: string;
  /** The JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Spawns `zt serve <args>` with exactly `env` (plus PATH, HOME, a loopback host and free ports unless given). */
export function launchServe(env: Record<string, string>, args: string[] = []): Watched {
  const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY, "--", ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return watchServe(child);
}

/** Starts `zt serve` and resolves once it listens; rejects with its stderr if it exits first. */
export async function startServe(env: Record<string, string>): Promise<ServeProcess> {
  const p = await untilListening(launchServe(env));
  return {
    ...p,
    logs: () => p.stdout.map((l) => JSON.parse(l) as Record<string, unknown>),
    async stop() {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
      return p.exit;
    },
  };
}
