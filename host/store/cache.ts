// The replica's local copy of the last state it served, so that a replica (re)started while
// PostgreSQL is unreachable still comes up with the last good policies, incidents and rollout
// settings. Every document is stored under its SHA-256 and checked against it when read; the
// index carries a checksum of itself. A cache that fails a check is not used at all.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileDurable } from "../common/durable-file.js";
import type { IncidentHead, PolicyVersion, RolloutSettings } from "./types.js";

export interface CachedState {
  /** The store revision this state is at. */
  rev: number;
  /** Each API policy's latest version, with its document. */
  policies: PolicyVersion[];
  incidents: IncidentHead[];
  rollout: RolloutSettings;
  /** The module served with this state, and the file policies it was built with. */
  module: { version: string; files_fingerprint: string } | null;
  written_at: string;
}

export class CacheCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CacheCorruptError";
  }
}

const FORMAT = 1;

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

export class StateCache {
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  private get index(): string {
    return join(this.dir, "index.json");
  }

  private doc(sha: string): string {
    return join(this.dir, "docs", `${sha}.txt`);
  }

  /** The cached state, null when there is none; CacheCorruptError when any check fails. */
  async read(): Promise<CachedState | null> {
    let text: string;
    try {
      text = await readFile(this.index, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    let parsed: { format?: unknown; checksum?: unknown; state?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new CacheCorruptError(`${this.index} is not JSON`);
    }
    if (parsed.format !== FORMAT || typeof parsed.checksum !== "string" || typeof parsed.state !== "object" || parsed.state === null) {
      throw new CacheCorruptError(`${this.index} has an unknown format`);
    }
    const body = JSON.stringify(parsed.state);
    if (sha256(body) !== parsed.checksum) throw new CacheCorruptError(`${this.index} does not match its checksum`);
    const state = parsed.state as CachedState;
    const policies: PolicyVersion[] = [];
    for (const p of state.policies) {
      if (p.sha256 === null) continue;
      let doc: string;
      try {
        doc = await readFile(this.doc(p.sha256), "utf8");
      } catch (e) {
        throw new CacheCorruptError(`cached document of "${p.name}" is missing (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
      if (sha256(doc) !== p.sha256) throw new CacheCorruptError(`cached document of "${p.name}" does not match its sha256 ${p.sha256}`);
      policies.push({ ...p, document: doc });
    }
    return { ...state, policies };
  }

  /** Replaces the cache (documents first, then the index, both durable); writes are serialised. */
  write(state: CachedState): Promise<void> {
    const run = async (): Promise<void> => {
      await mkdir(join(this.dir, "docs"), { recursive: true, mode: 0o700 });
      const keep = new Set<string>();
      const have = new Set(await readdir(join(this.dir, "docs")));
      for (const p of state.policies) {
        if (p.sha256 === null || p.document === null) continue;
        keep.add(`${p.sha256}.txt`);
        if (!have.has(`${p.sha256}.txt`)) await writeFileDurable(this.doc(p.sha256), p.document);
      }
      const stripped: CachedState = { ...state, policies: state.policies.map((p) => ({ ...p, document: null })) };
      const body = JSON.stringify(stripped);
      await writeFileDurable(this.index, JSON.stringify({ format: FORMAT, checksum: sha256(body), state: stripped }) + "\n");
      for (const name of have) if (!keep.has(name)) await rm(join(this.dir, "docs", name), { force: true });
    };
    const p = this.writing.then(run, run);
    this.writing = p.catch(() => undefined);
    return p;
  }
}
