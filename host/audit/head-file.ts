// The writer's head file (`spool.head.json`, beside the spool directory): the newest durable
// link of its chain and the highest sequence number it ever sent to PostgreSQL or the spool. After a kill -9 the next
// run reads it to declare the crashed chain as its predecessor (the exact head the dead
// process reached, not the last checkpoint's) and to close that chain no further than what
// the dead process could have written: rows beyond `sent` were never the engine's.
//
// Written without fsync: it must survive the process (the page cache does), and after a
// machine crash the last checkpoint's head is the fallback. The first write of a run
// replaces the file by rename; every later one overwrites it in place through the open
// descriptor, padded with spaces to the length it already has (JSON.parse ignores them). A
// write of at most one page at offset 0 is all or nothing for a process killed during it,
// so a reader finds the old state or the new one, never a mix; the rename of every write
// (open, write, close, rename: ext4 also starts writeback of a file renamed over another)
// cost the writer thread about 1 µs per record at two writes per batch.
import { closeSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";

import type { ChainLink } from "./chain.js";

export interface HeadState {
  durable: ChainLink;
  /** Highest sequence number sent to PostgreSQL or the spool (>= durable.seq). */
  sent: number;
}

/** Beside the spool directory, not in it: the spool's own files are the spool's. */
export function headFilePath(spoolDir: string): string {
  return spoolDir.replace(/\/+$/, "") + ".head.json";
}

/** In-place writes stay within one page (a state is ~250 bytes; a longer writer id falls back to rename). */
const PAGE = 4096;

export function headText(durable: ChainLink, sent: number): string {
  return JSON.stringify({ durable, sent: Math.max(sent, durable.seq) });
}

export class HeadFile {
  private readonly path: string;
  private readonly tmp: string;
  /** Open on the file the last rename put in place; null before the first write or after a failure. */
  private fd: number | null = null;
  /** Bytes the file holds: a shorter state is padded to it so no old byte survives. */
  private size = 0;

  constructor(spoolDir: string) {
    this.path = headFilePath(spoolDir);
    this.tmp = this.path + ".tmp";
  }

  write(durable: ChainLink, sent: number): void {
    const text = Buffer.from(headText(durable, sent));
    try {
      if (this.fd !== null && text.length <= PAGE) {
        const bytes = text.length < this.size ? Buffer.concat([text, Buffer.alloc(this.size - text.length, " ")]) : text;
        writeSync(this.fd, bytes, 0, bytes.length, 0);
        this.size = bytes.length;
        return;
      }
      this.close();
      writeFileSync(this.tmp, text, { mode: 0o600 });
      renameSync(this.tmp, this.path);
      this.size = text.length;
      this.fd = openSync(this.path, "r+");
    } catch {
      // A hint only (the checkpoints are the record); the spool's own writes report a failing disk.
      this.close();
    }
  }

  close(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // Nothing to keep.
    }
    this.fd = null;
  }

  /** The state an earlier run left, or null (none, or unreadable). */
  static read(spoolDir: string): HeadState | null {
    try {
      const v = JSON.parse(readFileSync(headFilePath(spoolDir), "utf8")) as HeadState;
      const d = v.durable;
      if (typeof d?.chain_id !== "string" || !Number.isSafeInteger(d.seq) || !/^[0-9a-f]{64}$/.test(d.hash) || !Number.isSafeInteger(v.sent)) return null;
      return v;
    } catch {
      return null;
    }
  }
}
