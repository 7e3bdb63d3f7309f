// `zt serve` as a real child process (through tsx, so tests need no build): its JSON log lines,
// its stderr, its exit, and the URLs it logs once it listens.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = 'import("./host/cli/serve.ts").then((m) => m.serveCommand(process.argv.slice(1))).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 4; })';

export interface ServeProcess {
  child: ChildProcess;
  /** Parsed log lines so far. */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  exit: Promise<number | null>;
  api: string;
  health: string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `zt serve` with exactly `env` (plus PATH and HOME) and resolves once it listens; rejects if it exits first. */
export async function startServe(env: Record<string, string>): Promise<ServeProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY, "--"], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ZT_HOST: "127.0.0.1", ZT_PORT: "0", ZT_HEALTH_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
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
  const urls = await Promise.race([listening, exit.then((c) => Promise.reject(new Error(`zt serve exited ${c}: ${err}`)))]);
  return {
    child,
    logs,
    stderr: () => err,
    exit,
    ...urls,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exit;
    },
  };
}
