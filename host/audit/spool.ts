// The local spool: append-only JSON-lines segment files under <dataDir>/spool, each line one
// AuditRow. Records go here when PostgreSQL has not committed them within the spill delay
// (slow or down), and at shutdown. Writes are fsynced in groups (one fdatasync per spill
// tick); a line that was not completely written before a crash is never acknowledged,
// so a torn last line is skipped on replay.
import { constants } from "node:fs";
import { mkdir, open, readFile, readdir, rm, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { takeLockFile } from "../common/pid-lock.js";
import type { ChainDeclaration } from "./chain.js";

/** Segments are rotated at this size so a replay never reads more than this at once. */
export const SEGMENT_MAX_BYTES = 16 * 1024 * 1024;

export interface SegmentInfo {
  path: string;
  /** Lines written (for segments found at start-up: complete lines found). */
  lines: number;
}

export interface SegmentContent {
  lines: string[];
  /** Lines that are not valid JSON objects (corruption); they are quarantined, not replayed. */
  corrupt: string[];
  tornTail: boolean;
}

export class Spool {
  private active: FileHandle | null = null;
  private activePath: string | null = null;
  private activeBytes = 0;
  private counter = 0;

  constructor(readonly dir: string) {}

  /** Takes the spool's lock file and lists the segments left by earlier runs, oldest first. */
  async open(): Promise<SegmentInfo[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.lock();
    const names = (await readdir(this.dir)).filter((n) => /^seg-\d{13}-\d{6}\.jsonl$/.test(n)).sort();
    const out: SegmentInfo[] = [];
    for (const n of names) {
      const p = join(this.dir, n);
      const c = await Spool.read(p);
      out.push({ path: p, lines: c.lines.length });
    }
    return out;
  }

  /** One writer per spool: a second process on the same data directory would interleave chains and delete the other's segments. */
  private async lock(): Promise<void> {
    // Atomic (O_EXCL) with stale-holder takeover: two engines started at once cannot both win.
    await takeLockFile(join(this.dir, "LOCK"), `audit spool ${this.dir}`, "; each engine needs its own ZT_DATA_DIR");
  }

  get activeSegment(): string | null {
    return this.activePath;
  }

  /** Appends lines to the active segment and fdatasyncs them. Returns the segment written to. */
  async append(lines: readonly string[]): Promise<string> {
    if (!this.active || this.activeBytes >= SEGMENT_MAX_BYTES) await this.rotate();
    const data = lines.join("\n") + "\n";
    const fh = this.active as FileHandle;
    await fh.appendFile(data, "utf8");
    await fh.datasync();
    this.activeBytes += Buffer.byteLength(data);
    return this.activePath as string;
  }

  /** Closes the active segment; the next append starts a new one. */
  async seal(): Promise<void> {
    const fh = this.active;
    this.active = null;
    this.activePath = null;
    this.activeBytes = 0;
    if (fh) await fh.close();
  }

  private async rotate(): Promise<void> {
    await this.seal();
    const name = `seg-${String(Date.now()).padStart(13, "0")}-${String(this.counter++ % 1_000_000).padStart(6, "0")}.jsonl`;
    const p = join(this.dir, name);
    this.active = await open(p, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_EXCL, 0o600);
    this.activePath = p;
    // The new file's directory entry must survive a crash too.
    const d = await open(this.dir, constants.O_RDONLY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async remove(path: string): Promise<void> {
    if (path === this.activePath) await this.seal();
    await rm(path, { force: true });
  }

  /**
   * Chain declarations wait in `chains.jsonl` until PostgreSQL has them: a chain whose
   * records are spooled (PostgreSQL down) is declared from here when they are replayed.
   */
  async declare(d: ChainDeclaration): Promise<void> {
    const fh = await open(join(this.dir, "chains.jsonl"), "a", 0o600);
    try {
      await fh.appendFile(JSON.stringify(d) + "\n", "utf8");
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  /** Declarations left by earlier runs (and this one), oldest first; a torn last line is skipped. */
  async declarations(): Promise<ChainDeclaration[]> {
    let text: string;
    try {
      text = await readFile(join(this.dir, "chains.jsonl"), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    const out: ChainDeclaration[] = [];
    const lines = text.split("\n");
    lines.pop();
    for (const l of lines) {
      try {
        const d = JSON.parse(l) as ChainDeclaration;
        if (typeof d.chain_id === "string" && d.hash_version === 2) out.push(d);
      } catch {
        // A damaged line: its chain's records verify as undeclared, which is what happened.
      }
    }
    return out;
  }

  /** PostgreSQL holds every declaration in the file. */
  async declarationsStored(): Promise<void> {
    await writeFile(join(this.dir, "chains.jsonl"), "", { mode: 0o600 });
  }

  /** Records PostgreSQL refused (data errors, decision_id collisions): kept on disk, never silently dropped. */
  async quarantine(lines: readonly string[], reason: string): Promise<void> {
    const fh = await open(join(this.dir, "rejected.jsonl"), "a", 0o600);
    try {
      const at = new Date().toISOString();
      await fh.appendFile(lines.map((l) => JSON.stringify({ at, reason, line: l })).join("\n") + "\n", "utf8");
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    await this.seal();
    await rm(join(this.dir, "LOCK"), { force: true });
  }

  static async read(path: string): Promise<SegmentContent> {
    const text = await readFile(path, "utf8");
    const parts = text.split("\n");
    const last = parts.pop() as string;
    const lines: string[] = [];
    const corrupt: string[] = [];
    for (const l of parts) {
      if (l.length === 0) continue;
      if (isJsonObject(l)) lines.push(l);
      else corrupt.push(l);
    }
    return { lines, corrupt, tornTail: last.length > 0 };
  }
}

function isJsonObject(line: string): boolean {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && typeof (v as { seq?: unknown }).seq === "number";
  } catch {
    return false;
  }
}
