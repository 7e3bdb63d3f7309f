// The writer's head file (`spool.head.json`, beside the spool directory): the newest durable
// link of its chain and the highest sequence number it ever sent to PostgreSQL or the spool. After a kill -9 the next
// run reads it to declare the crashed chain as its predecessor (the exact head the dead
// process reached, not the last checkpoint's) and to close that chain no further than what
// the dead process could have written: rows beyond `sent` were never the engine's.
//
// Replaced by rename, without fsync: it must survive the process (the page cache does), and
// after a machine crash the last checkpoint's head is the fallback. Written at most twice per
// batch, so it costs the writer thread nothing measurable.
import { readFileSync, renameSync, writeFileSync } from "node:fs";

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

export class HeadFile {
  private readonly path: string;
  private readonly tmp: string;

  constructor(spoolDir: string) {
    this.path = headFilePath(spoolDir);
    this.tmp = this.path + ".tmp";
  }

  write(durable: ChainLink, sent: number): void {
    try {
      writeFileSync(this.tmp, JSON.stringify({ durable, sent: Math.max(sent, durable.seq) }), { mode: 0o600 });
      renameSync(this.tmp, this.path);
    } catch {
      // A hint only (the checkpoints are the record); the spool's own writes report a failing disk.
    }
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
