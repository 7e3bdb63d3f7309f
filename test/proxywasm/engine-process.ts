// A real engine process (`zt serve`, embedded PostgreSQL for its audit trail) for the sync
// tests: started on a port chosen once, so it can be stopped and started again where the
// sidecars' cluster points.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = 'import("./host/cli/serve.ts").then((m) => m.serveCommand(process.argv.slice(1))).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 4; })';

export interface EngineProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts `zt serve` with the policies in `policyDir` and state in `dataDir`; resolves when the API listens. */
export async function startEngineProcess(opts: { port: number; policyDir: string; dataDir: string; token: string; env?: Record<string, string> }): Promise<EngineProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "-e", ENTRY], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/root",
      ZT_HOST: "127.0.0.1",
      ZT_PORT: String(opts.port),
      ZT_HEALTH_PORT: "0",
      ZT_POLICY_PATH: opts.policyDir,
      ZT_DATA_DIR: opts.dataDir,
      ZT_ADMIN_TOKEN: opts.token,
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  let out = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  const listening = new Promise<void>((resolve) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"zt engine listening"')) resolve();
    });
  });
  await Promise.race([listening, exited.then((c) => Promise.reject(new Error(`zt serve exited ${c}: ${err}`)))]);
  return {
    url: `http://127.0.0.1:${opts.port}`,
    child,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
