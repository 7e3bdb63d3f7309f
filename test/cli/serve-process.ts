// A `zt serve` child process as the tests watch it: its JSON log lines on stdout, its stderr,
// its exit code, and the API and health URLs from the "zt engine listening" line.
import type { ChildProcess } from "node:child_process";

export interface ServeProcess {
  child: ChildProcess;
  /** Every stdout line so far (each one JSON). */
  stdout: string[];
  stderr: () => string;
  exit: Promise<number | null>;
  listening: Promise<{ api: string; health: string }>;
}

export function watchServe(child: ChildProcess): ServeProcess {
  const stdout: string[] = [];
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
      stdout.push(line);
      const o = JSON.parse(line) as { msg: string; api?: string; health?: string };
      if (o.msg === "zt engine listening") onListening({ api: o.api!, health: o.health! });
    }
  });
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  return { child, stdout, stderr: () => err, exit, listening };
}

/** Resolves with the URLs once it listens; rejects with its stderr if it exits first. */
export async function untilListening(p: ServeProcess): Promise<ServeProcess & { api: string; health: string }> {
  const urls = await Promise.race([p.listening, p.exit.then((c) => Promise.reject(new Error(`zt serve exited ${c}: ${p.stderr()}`)))]);
  return { ...p, ...urls };
}
