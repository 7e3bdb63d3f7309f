// Where checkpoints live outside the database: a directory (meant to be its own volume), one
// subdirectory per writer and one JSON-lines file per UTC day, appended and fdatasynced; and
// optionally an HTTP witness that receives each checkpoint (POST) and lists what it holds
// (GET {"checkpoints": [...]}). Verify reads either.
import { constants } from "node:fs";
import { mkdir, open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { syncDir } from "../common/durable-file.js";
import { parseSignedCheckpoint, type SignedCheckpoint } from "./checkpoint.js";

/** A writer id as a directory name (writer ids may hold any character). */
export function writerDirName(writerId: string): string {
  return encodeURIComponent(writerId).replace(/\./g, "%2E");
}

const DAY_FILE = /^\d{4}-\d{2}-\d{2}\.jsonl$/;

/** Appends a writer's checkpoints to `<dir>/<writer>/<YYYY-MM-DD>.jsonl`. */
export class CheckpointDirectory {
  readonly writerDir: string;

  constructor(
    readonly dir: string,
    writerId: string,
  ) {
    this.writerDir = join(dir, writerDirName(writerId));
  }

  /** The day file a checkpoint goes to. The first checkpoint of a day file is always a full one. */
  fileFor(issuedAt: string): string {
    return join(this.writerDir, `${issuedAt.slice(0, 10)}.jsonl`);
  }

  async append(s: SignedCheckpoint): Promise<void> {
    await mkdir(this.writerDir, { recursive: true, mode: 0o700 });
    const file = this.fileFor(s.checkpoint.issued_at);
    const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600);
    let created = false;
    try {
      created = (await fh.stat()).size === 0;
      await fh.appendFile(JSON.stringify(s) + "\n", "utf8");
      await fh.datasync();
    } finally {
      await fh.close();
    }
    if (created) await syncDir(this.writerDir);
  }

  /** The checkpoints of the newest day file (the writer's own recent history), oldest first. */
  async readLatestDay(): Promise<SignedCheckpoint[]> {
    let names: string[];
    try {
      names = (await readdir(this.writerDir)).filter((n) => DAY_FILE.test(n)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    const last = names[names.length - 1];
    if (!last) return [];
    const read = parseCheckpointLines(await readFile(join(this.writerDir, last), "utf8"), join(this.writerDir, last));
    if (read.problems.length > 0) throw new Error(read.problems[0]);
    return read.checkpoints;
  }
}

export interface CheckpointRead {
  checkpoints: SignedCheckpoint[];
  /** Lines that are not signed checkpoints, as `where: why` (tampering or corruption). */
  problems: string[];
}

/** Parses a JSON-lines file; a last line without its newline (a crash mid-append, never acknowledged) is skipped. */
export function parseCheckpointLines(text: string, where: string): CheckpointRead {
  const out: CheckpointRead = { checkpoints: [], problems: [] };
  const lines = text.split("\n");
  lines.pop();
  lines.forEach((line, i) => {
    if (line.length === 0) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      out.problems.push(`${where}:${i + 1}: not JSON`);
      return;
    }
    const s = parseSignedCheckpoint(v);
    if (typeof s === "string") out.problems.push(`${where}:${i + 1}: ${s}`);
    else out.checkpoints.push(s);
  });
  return out;
}

/** Every checkpoint in a checkpoint directory (all writers, all days). Throws when the directory cannot be read. */
export async function readCheckpointDirectory(dir: string): Promise<CheckpointRead> {
  const out: CheckpointRead = { checkpoints: [], problems: [] };
  for (const writer of (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    const wdir = join(dir, writer);
    for (const name of (await readdir(wdir)).filter((n) => DAY_FILE.test(n)).sort()) {
      const r = parseCheckpointLines(await readFile(join(wdir, name), "utf8"), join(wdir, name));
      out.checkpoints.push(...r.checkpoints);
      out.problems.push(...r.problems);
    }
  }
  return out;
}

/** Every checkpoint a witness holds: GET <url> answers {"checkpoints": [...]} (or a bare list). */
export async function readCheckpointUrl(url: string): Promise<CheckpointRead> {
  const res = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const body = (await res.json()) as unknown;
  const list = Array.isArray(body) ? body : (body as { checkpoints?: unknown } | null)?.checkpoints;
  if (!Array.isArray(list)) throw new Error(`GET ${url}: expected {"checkpoints": [...]}`);
  const out: CheckpointRead = { checkpoints: [], problems: [] };
  list.forEach((v, i) => {
    const s = parseSignedCheckpoint(v);
    if (typeof s === "string") out.problems.push(`${url} [${i}]: ${s}`);
    else out.checkpoints.push(s);
  });
  return out;
}

export function readCheckpoints(source: string): Promise<CheckpointRead> {
  return /^https?:\/\//.test(source) ? readCheckpointUrl(source) : readCheckpointDirectory(source);
}

/**
 * The optional HTTP witness: each checkpoint is POSTed (JSON) in order; one that fails is
 * kept and sent again before newer ones at the next attempt (up to `maxPending`, beyond
 * which the oldest are given up, and counted as failures).
 */
export class CheckpointWitness {
  private pending: SignedCheckpoint[] = [];
  private sending = false;

  constructor(
    readonly url: string,
    private readonly onFailure: (error: string) => void,
    private readonly maxPending = 10_000,
  ) {}

  get backlog(): number {
    return this.pending.length;
  }

  /** Queues a checkpoint and sends everything pending; resolves when this attempt is over. */
  async submit(s: SignedCheckpoint | null): Promise<void> {
    if (s) this.pending.push(s);
    while (this.pending.length > this.maxPending) {
      this.pending.shift();
      this.onFailure("witness backlog full: oldest checkpoint not delivered");
    }
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.pending.length > 0) {
        const next = this.pending[0] as SignedCheckpoint;
        try {
          const res = await fetch(this.url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(next),
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
        } catch (e) {
          this.onFailure(`POST ${this.url}: ${(e as Error).message}`);
          return;
        }
        this.pending.shift();
      }
    } finally {
      this.sending = false;
    }
  }
}
