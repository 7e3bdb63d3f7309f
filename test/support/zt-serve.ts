// `zt serve` as a real child process (through tsx, so tests need no build): its stdout lines
// and their JSON, its stderr, its exit, and the URLs it logs once it listens.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = 'import("./host/cli/serve.ts").then((m) => m.serveCommand(process.argv.slice(1))).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 4; })';

export interface LaunchedServe {
  child: ChildProcess;
  /** Raw stdout lines so far. */
  lines: string[];
  /** The lines that are JSON log lines, parsed. */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  exit: Promise<number | null>;
  /** Resolves with the URLs of the "zt engine listening" line. */
  listening: Promise<{ api: string; health: string }>;
}

export interface ServeProcess extends Omit<LaunchedServe, "listening"> {
  api: string;
  health: string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Spawns `zt serve <args>` with exactly `env` (plus PATH, HOME, loopback host and free ports unless given). */
export function launchServe(env: Record<string, string>, args: string[] = []): LaunchedServe {
  const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY, "--", ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  let err = "";
  let buf = "";
  let onListening: (v: { api: string; health: string }) => void = () => undefined;
  const listening = new Promise<{ api: string; health: string }>((res) => (onListening = res));
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(o);
      if (o.msg === "zt engine listening") onListening({ api: o.api as string, health: o.health as string });
    }
  });
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  return { child, lines, logs, stderr: () => err, exit, listening };
}

/** Starts `zt serve` and resolves once it listens; rejects if it exits first. */
export async function startServe(env: Record<string, string>): Promise<ServeProcess> {
  const l = launchServe(env);
  const urls = await Promise.race([l.listening, l.exit.then((c) => Promise.reject(new Error(`zt serve exited ${c}: ${l.stderr()}`)))]);
  const { listening: _listening, ...rest } = l;
  return {
    ...rest,
    ...urls,
    async stop() {
      if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill("SIGTERM");
      return l.exit;
    },
  };
}
