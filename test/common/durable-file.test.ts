// writeFileDurable never leaves its temporary file behind (issue 22, files on disk): when the
// write or the sync throws, the .tmp is removed and the target keeps its old content. The
// write failure is a real one: ENOSPC on a 64 KiB tmpfs mounted for the test (root).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileDurable } from "../../host/common/durable-file.js";
import { requireProgram } from "../support/programs.js";

let mnt: string;
beforeAll(() => {
  requireProgram("mount");
  if (process.getuid?.() !== 0) throw new Error("this test mounts a small tmpfs: run it as root (CI does)");
  mnt = mkdtempSync(join(tmpdir(), "zt-durable-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt]);
});
afterAll(() => {
  if (!mnt) return;
  try {
    execFileSync("umount", [mnt]);
  } finally {
    rmSync(mnt, { recursive: true, force: true });
  }
});

describe("writeFileDurable", () => {
  it("writes, replaces, and leaves only the target", async () => {
    const target = join(mnt, "state.json");
    await writeFileDurable(target, "one\n");
    await writeFileDurable(target, "two\n");
    expect(readFileSync(target, "utf8")).toBe("two\n");
    expect(readdirSync(mnt)).toEqual(["state.json"]);
  });

  it("a write that fails (ENOSPC) removes its .tmp and keeps the old content", async () => {
    const target = join(mnt, "state.json");
    writeFileSync(target, "old\n");
    await expect(writeFileDurable(target, Buffer.alloc(256 * 1024, 0x61))).rejects.toMatchObject({ code: "ENOSPC" });
    expect(readdirSync(mnt)).toEqual(["state.json"]);
    expect(readFileSync(target, "utf8")).toBe("old\n");
  });

  it("a write that throws before any byte (bad data) removes its .tmp too", async () => {
    const target = join(mnt, "other.json");
    await expect(writeFileDurable(target, 42 as unknown as string)).rejects.toThrow();
    expect(readdirSync(mnt).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });
});
