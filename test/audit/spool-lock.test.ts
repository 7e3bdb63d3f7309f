// The audit spool belongs to one process (issue 22, files on disk): two engines started on one
// data directory race for its lock and exactly one wins; a lock left by a dead process is
// taken over; the lock file of a live holder is never removed by the loser.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Spool } from "../../host/audit/spool.js";

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "zt-spool-lock-"));
  dirs.push(d);
  return d;
}

/** Starts a locker process; resolves with its verdict line. */
function locker(dir: string, go: string): { child: ChildProcess; verdict: Promise<string> } {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "fixtures", "spool-locker.ts"), dir, go], { stdio: ["pipe", "pipe", "inherit"] });
  children.push(child);
  const verdict = new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once("exit", (code) => reject(new Error(`locker exited (${code}) without a verdict`)));
  });
  return { child, verdict };
}

async function race(dir: string): Promise<string[]> {
  const go = join(dir, "..", `go-${Math.random().toString(16).slice(2)}`);
  const a = locker(join(dir, "spool"), go);
  const b = locker(join(dir, "spool"), go);
  // Both are loaded and polling before the signal: they reach open() within a millisecond.
  await new Promise((r) => setTimeout(r, 1500));
  writeFileSync(go, "");
  try {
    return (await Promise.all([a.verdict, b.verdict])).sort();
  } finally {
    a.child.stdin!.end();
    b.child.stdin!.end();
    rmSync(go, { force: true });
  }
}

describe("audit spool lock", () => {
  it("two processes racing for one spool: exactly one takes it, every time", async () => {
    for (let round = 0; round < 6; round++) {
      const dir = tempDir();
      const verdicts = await race(dir);
      expect(verdicts[0], `round ${round}`).toMatch(/^REFUSED audit spool .* is in use by process \d+/);
      expect(verdicts[1], `round ${round}`).toBe("TAKEN");
    }
  }, 120_000);

  it("two processes racing over a lock left by a dead process: exactly one takes it over", async () => {
    for (let round = 0; round < 4; round++) {
      const dir = tempDir();
      const spool = join(dir, "spool");
      // A process that has exited: its pid is free (or reused by an unrelated process with another start time).
      const dead = spawn(process.execPath, ["-e", "0"]);
      await new Promise((r) => dead.once("exit", r));
      await new Spool(spool).open();
      writeFileSync(join(spool, "LOCK"), `${dead.pid}\n`);
      const verdicts = await race(dir);
      expect(verdicts[0], `round ${round}`).toMatch(/^REFUSED/);
      expect(verdicts[1], `round ${round}`).toBe("TAKEN");
    }
  }, 120_000);

  it("the holder's lock names it; close() releases it for the next engine", async () => {
    const dir = join(tempDir(), "spool");
    const first = new Spool(dir);
    await first.open();
    expect(readFileSync(join(dir, "LOCK"), "utf8").split(" ")[0]).toBe(String(process.pid));
    await first.close();
    const second = new Spool(dir);
    await second.open();
    await second.close();
  });
});
