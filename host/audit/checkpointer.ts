// The writer thread's checkpoints: the lineage of the writer's chains (every chain it ever
// declared, with its newest anchored head and whether it is closed), signed every interval,
// at start (declaring the new chain before any of its records is stored) and at shutdown
// (closing it). A chain a crashed run left open is closed by the next run, once its spool is
// replayed, at the head PostgreSQL holds, never beyond what the dead process had sent.
import type { ChainDeclaration, ChainLink } from "./chain.js";
import { CHECKPOINT_FORMAT, checkpointHash, signCheckpoint, type Checkpoint, type CheckpointChain, type SignedCheckpoint } from "./checkpoint.js";
import type { CheckpointKey } from "./checkpoint-key.js";
import type { CheckpointDirectory, CheckpointWitness } from "./checkpoint-store.js";
import type { HeadState } from "./head-file.js";

export type CheckpointSink = "directory" | "witness";

export interface CheckpointerOptions {
  writerId: string;
  key: CheckpointKey;
  directory: CheckpointDirectory;
  witness: CheckpointWitness | null;
  log: (obj: Record<string, unknown>) => void;
  /** Every checkpoint stored in the directory (the latest is served by the API). */
  onCheckpoint: (s: SignedCheckpoint) => void;
  /** A checkpoint the directory refused (counted in zt_audit_checkpoint_failures_total). */
  onFailure: (sink: CheckpointSink, error: string) => void;
  now?: () => Date;
}

/** Finds where a crashed chain ends in PostgreSQL: its newest record with seq <= bound (null bound: no limit). */
export type ChainEndReader = (chainId: string, bound: number | null) => Promise<ChainLink | null>;

interface PendingClose {
  chainId: string;
  /** Highest sequence number the crashed process sent (from its head file), if known. */
  bound: number | null;
}

export class Checkpointer {
  /** Every chain of the writer, in the order they were declared. */
  private readonly chains = new Map<string, CheckpointChain>();
  /** Each chain's entry as last written (a checkpoint that is not full lists only what changed). */
  private readonly written = new Map<string, string>();
  private last: { n: number; hash: string; day: string } | null = null;
  private pending: PendingClose[] = [];
  private current: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => Date;

  private constructor(private readonly opts: CheckpointerOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  /** Reads the writer's lineage back from its newest day file (which always begins with a full checkpoint). */
  static async open(opts: CheckpointerOptions): Promise<Checkpointer> {
    const cp = new Checkpointer(opts);
    for (const s of await opts.directory.readLatestDay()) {
      const c = s.checkpoint;
      if (c.writer_id !== opts.writerId) continue;
      if (c.full) cp.chains.clear();
      for (const e of c.chains) cp.chains.set(e.chain_id, e);
      cp.last = { n: c.n, hash: checkpointHash(c), day: c.issued_at.slice(0, 10) };
    }
    for (const [id, e] of cp.chains) cp.written.set(id, JSON.stringify(e));
    return cp;
  }

  /**
   * The head the new chain declares as its predecessor: the end of the writer's last chain
   * (its close, or for a crashed run the head file's durable head, else the last anchor).
   * Chains crashed runs left open are queued for closing.
   */
  plan(head: HeadState | null): ChainLink | null {
    for (const e of this.chains.values()) {
      if (!e.closed) this.pending.push({ chainId: e.chain_id, bound: head?.durable.chain_id === e.chain_id ? head.sent : null });
    }
    const lastChain = [...this.chains.values()].pop();
    if (!lastChain) return head?.durable ?? null;
    const anchored: ChainLink = { chain_id: lastChain.chain_id, seq: lastChain.seq, hash: lastChain.hash };
    if (!lastChain.closed && head?.durable.chain_id === lastChain.chain_id && head.durable.seq >= lastChain.seq) return head.durable;
    return anchored;
  }

  /** Chains of crashed runs still waiting to be closed. */
  get pendingCloses(): number {
    return this.pending.length;
  }

  /** Declares the new chain in a full checkpoint. Throws when the directory cannot take it: a chain is never written undeclared. */
  declare(d: ChainDeclaration, genesis: string): Promise<void> {
    return this.serial(async () => {
      this.current = d.chain_id;
      this.chains.set(d.chain_id, { chain_id: d.chain_id, started_at: d.started_at, predecessor: d.predecessor, seq: 0, hash: genesis, closed: false });
      const ok = await this.issue(true);
      if (!ok) throw new Error(`cannot write the audit checkpoint declaring chain ${d.chain_id} to ${this.opts.directory.dir}`);
    });
  }

  /**
   * The periodic checkpoint: the current chain's committed head, and crashed chains closed
   * when `readEnd` is given (the writer has replayed its spool, so PostgreSQL holds all
   * that the dead process made durable). Failures are reported, and the next tick retries.
   */
  tick(committed: ChainLink, readEnd: ChainEndReader | null): Promise<boolean> {
    return this.serial(async () => {
      this.advance(committed, false);
      if (readEnd) await this.closePending(readEnd);
      return this.issue(false);
    });
  }

  /** At shutdown: the chain ends at `final` (its last durable record). */
  finish(final: ChainLink): Promise<boolean> {
    return this.serial(async () => {
      this.advance(final, true);
      return this.issue(false);
    });
  }

  private advance(link: ChainLink, close: boolean): void {
    const e = this.chains.get(link.chain_id);
    if (!e || e.closed) return;
    if (link.seq >= e.seq) {
      e.seq = link.seq;
      e.hash = link.hash;
    }
    if (close) e.closed = true;
  }

  private async closePending(readEnd: ChainEndReader): Promise<void> {
    const left: PendingClose[] = [];
    for (const p of this.pending) {
      const e = this.chains.get(p.chainId);
      if (!e || e.closed) continue;
      let end: ChainLink | null;
      try {
        end = await readEnd(p.chainId, p.bound);
      } catch (err) {
        this.opts.log({ msg: "audit: cannot read the end of a crashed chain yet", chain_id: p.chainId, error: String(err) });
        left.push(p);
        continue;
      }
      // PostgreSQL behind the last anchor means records were lost or removed: close at the
      // anchor, so verify reports them instead of the close hiding them.
      if (end && end.seq >= e.seq) {
        e.seq = end.seq;
        e.hash = end.hash;
      }
      e.closed = true;
      this.opts.log({ msg: "audit: closed the chain of a crashed run", chain_id: e.chain_id, seq: e.seq });
    }
    this.pending = left;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Signs and stores the next checkpoint. False when the directory refused it (nothing advanced; retried next time). */
  private async issue(forceFull: boolean): Promise<boolean> {
    const issuedAt = this.now().toISOString();
    const day = issuedAt.slice(0, 10);
    // Each day file starts with a full checkpoint, so the newest file alone gives the lineage.
    const full = forceFull || this.last === null || this.last.day !== day;
    const entries = [...this.chains.values()].filter((e) => full || e.chain_id === this.current || this.written.get(e.chain_id) !== JSON.stringify(e));
    const c: Checkpoint = {
      format: CHECKPOINT_FORMAT,
      writer_id: this.opts.writerId,
      n: (this.last?.n ?? 0) + 1,
      issued_at: issuedAt,
      prev: this.last?.hash ?? null,
      key_id: this.opts.key.keyId,
      full,
      chain_count: this.chains.size,
      chains: entries.map((e) => ({ ...e, predecessor: e.predecessor ? { ...e.predecessor } : null })),
    };
    const signed = signCheckpoint(c, this.opts.key.privateKey);
    try {
      await this.opts.directory.append(signed);
    } catch (e) {
      this.opts.log({ msg: "audit: checkpoint not written", dir: this.opts.directory.dir, error: String(e) });
      this.opts.onFailure("directory", String(e));
      return false;
    }
    this.last = { n: c.n, hash: checkpointHash(c), day };
    for (const e of entries) this.written.set(e.chain_id, JSON.stringify(e));
    this.opts.onCheckpoint(signed);
    if (this.opts.witness) void this.opts.witness.submit(signed);
    return true;
  }
}
