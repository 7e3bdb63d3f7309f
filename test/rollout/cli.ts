// The zt CLI as users run it (the built dist/host/cli/main.js in a child process), and
// temporary policy directories written from strings.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export const CLI = "dist/host/cli/main.js";

export interface Run {
  code: number | null;
  out: string;
  err: string;
}

export function zt(args: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Run {
  const r = spawnSync(process.execPath, [join(process.cwd(), CLI), ...args], { encoding: "utf8", cwd: opts.cwd, env: { ...process.env, ...opts.env }, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Like zt() but without blocking the event loop (for tests that serve something meanwhile). */
export function ztAsync(args: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(process.cwd(), CLI), ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env } });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

/** A temporary directory holding `files` (relative path -> text). */
export function tempTree(files: Record<string, string>, prefix = "zt-rollout-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const [rel, text] of Object.entries(files)) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  return dir;
}
