// The writer's head file: replaced by rename on a run's first write, then overwritten in
// place (padded to the length it has), and read back as the newest state every time.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeadFile, headFilePath } from "../../host/audit/head-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function spoolDir(): string {
  const d = mkdtempSync(join(tmpdir(), "zt-head-"));
  dirs.push(d);
  return join(d, "spool");
}

const link = (chain: string, seq: number) => ({ chain_id: chain, seq, hash: (seq % 16).toString(16).repeat(64) });

describe("HeadFile", () => {
  it("reads back the newest state after writes that shrink and grow the text", () => {
    const dir = spoolDir();
    const head = new HeadFile(dir);
    expect(HeadFile.read(dir)).toBeNull();
    const states: Array<[string, number, number]> = [
      ["w/1", 1_000_000, 1_002_000],
      ["w/1", 7, 9],
      ["w/1", 123_456_789, 123_456_790],
      ["w/1", 0, 0],
      ["w/1-a-longer-chain-id-\u00e9", 42, 4_242],
    ];
    for (const [chain, seq, sent] of states) {
      head.write(link(chain, seq), sent);
      expect(HeadFile.read(dir)).toEqual({ durable: link(chain, seq), sent });
    }
    // In place: the file never shrinks, a shorter state is padded with spaces.
    expect(statSync(headFilePath(dir)).size).toBe(Buffer.byteLength(readFileSync(headFilePath(dir), "utf8")));
    expect(readFileSync(headFilePath(dir), "utf8").length).toBeGreaterThan(JSON.stringify({ durable: link("w/1", 0), sent: 0 }).length);
    head.close();
    // A new run's writer starts with a rename: the file is exactly its state again.
    const next = new HeadFile(dir);
    next.write(link("w/2", 0), 0);
    expect(readFileSync(headFilePath(dir), "utf8")).toBe(JSON.stringify({ durable: link("w/2", 0), sent: 0 }));
    next.close();
  });

  it("never records sent below the durable head", () => {
    const dir = spoolDir();
    const head = new HeadFile(dir);
    head.write(link("w/1", 10), 3);
    expect(HeadFile.read(dir)?.sent).toBe(10);
    head.close();
  });
});
