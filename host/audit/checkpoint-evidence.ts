// What a set of checkpoints proves, for verify: each writer's checkpoints must be signed by a
// trusted key, numbered without gaps from 1 and linked (each names the hash of the one
// before), and consistent with each other (a head never moves back or changes its hash, a
// closed chain stays as it was closed). Folded together they give, per chain, its signed
// declaration, every anchored link (seq -> hash) and where it was closed.
import type { KeyObject } from "node:crypto";
import type { ChainDeclaration } from "./chain.js";
import { canonicalJson } from "./chain.js";
import { checkpointHash, entryDeclaration, signatureValid, type CheckpointChain, type SignedCheckpoint } from "./checkpoint.js";
import { keyId } from "./checkpoint-key.js";
import type { CheckpointRead } from "./checkpoint-store.js";

export interface Anchor {
  hash: string;
  /** The checkpoint that signed it, e.g. `engine-1#42`. */
  where: string;
}

export interface ChainEvidence {
  writerId: string;
  declaration: ChainDeclaration;
  /** The checkpoint that first listed the chain. */
  declaredIn: string;
  /** seq -> hash signed for it (seq 0: the genesis). */
  anchors: Map<number, Anchor>;
  closed: { seq: number; where: string } | null;
}

export interface CheckpointEvidence {
  /** Everything wrong with the checkpoints themselves (tampering with the sink, an untrusted key, ...). */
  problems: string[];
  writers: number;
  checkpoints: number;
  /** The newest checkpoint per writer (issued_at). */
  latest: Record<string, string>;
  chains: Map<string, ChainEvidence>;
}

const where = (writer: string, n: number): string => `${writer}#${n}`;

function sameDeclaration(a: CheckpointChain, b: CheckpointChain): boolean {
  return a.started_at === b.started_at && canonicalJson(a.predecessor) === canonicalJson(b.predecessor);
}

/** Checks and folds checkpoints read from one or more sources (a directory, a witness). */
export function foldCheckpoints(reads: readonly CheckpointRead[], trusted: readonly KeyObject[]): CheckpointEvidence {
  const ev: CheckpointEvidence = { problems: [], writers: 0, checkpoints: 0, latest: {}, chains: new Map() };
  const keys = new Map(trusted.map((k) => [keyId(k), k]));
  const byWriter = new Map<string, Map<number, SignedCheckpoint>>();
  for (const r of reads) {
    ev.problems.push(...r.problems);
    for (const s of r.checkpoints) {
      const c = s.checkpoint;
      const list = byWriter.get(c.writer_id) ?? new Map<number, SignedCheckpoint>();
      byWriter.set(c.writer_id, list);
      const seen = list.get(c.n);
      if (seen === undefined) list.set(c.n, s);
      else if (canonicalJson(seen) !== canonicalJson(s)) ev.problems.push(`checkpoint ${where(c.writer_id, c.n)}: two different checkpoints carry this number`);
    }
  }
  ev.writers = byWriter.size;
  for (const [writer, list] of [...byWriter].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    foldWriter(writer, [...list.values()].sort((a, b) => a.checkpoint.n - b.checkpoint.n), keys, ev);
  }
  return ev;
}

function foldWriter(writer: string, list: SignedCheckpoint[], keys: Map<string, KeyObject>, ev: CheckpointEvidence): void {
  const state = new Map<string, CheckpointChain>();
  let prev: { n: number; hash: string } | null = null;
  for (const s of list) {
    const c = s.checkpoint;
    const at = where(writer, c.n);
    const key = keys.get(c.key_id);
    if (!key) {
      ev.problems.push(`checkpoint ${at}: signed by key ${c.key_id.slice(0, 16)}…, which is not a trusted key (--public-key)`);
      continue;
    }
    if (!signatureValid(s, key)) {
      ev.problems.push(`checkpoint ${at}: the signature does not verify (checkpoint modified)`);
      continue;
    }
    ev.checkpoints++;
    if (prev === null) {
      if (c.n !== 1) ev.problems.push(`checkpoints ${where(writer, 1)}..${c.n - 1} are missing`);
      else if (c.prev !== null) ev.problems.push(`checkpoint ${at}: the first checkpoint names a predecessor`);
    } else {
      if (c.n !== prev.n + 1) ev.problems.push(`checkpoint${c.n - prev.n > 2 ? "s" : ""} ${where(writer, prev.n + 1)}${c.n - prev.n > 2 ? ".." + (c.n - 1) : ""} missing`);
      else if (c.prev !== prev.hash) ev.problems.push(`checkpoint ${at}: does not link to checkpoint ${prev.n} (prev hash differs)`);
    }
    prev = { n: c.n, hash: checkpointHash(c) };
    ev.latest[writer] = c.issued_at;

    if (c.full) {
      const listed = new Set(c.chains.map((e) => e.chain_id));
      for (const id of state.keys()) if (!listed.has(id)) ev.problems.push(`checkpoint ${at}: the full list omits chain ${id}`);
    }
    for (const e of c.chains) applyEntry(writer, at, e, state, ev);
    if (c.chain_count !== state.size) ev.problems.push(`checkpoint ${at}: says the writer has ${c.chain_count} chains, its checkpoints list ${state.size}`);
  }
}

function applyEntry(writer: string, at: string, e: CheckpointChain, state: Map<string, CheckpointChain>, ev: CheckpointEvidence): void {
  const before = state.get(e.chain_id);
  if (before) {
    if (!sameDeclaration(before, e)) ev.problems.push(`checkpoint ${at}: chain ${e.chain_id} is declared differently than before`);
    if (before.closed && (e.seq !== before.seq || e.hash !== before.hash || !e.closed)) ev.problems.push(`checkpoint ${at}: chain ${e.chain_id} changed after it was closed`);
    if (e.seq < before.seq) ev.problems.push(`checkpoint ${at}: chain ${e.chain_id}'s head moved back from ${before.seq} to ${e.seq}`);
  }
  state.set(e.chain_id, e);
  let chain = ev.chains.get(e.chain_id);
  if (!chain) {
    chain = { writerId: writer, declaration: entryDeclaration(writer, e), declaredIn: at, anchors: new Map(), closed: null };
    ev.chains.set(e.chain_id, chain);
  } else if (chain.writerId !== writer) {
    ev.problems.push(`checkpoint ${at}: chain ${e.chain_id} is also listed by writer ${chain.writerId}`);
    return;
  }
  const anchored = chain.anchors.get(e.seq);
  if (anchored && anchored.hash !== e.hash) ev.problems.push(`checkpoint ${at}: chain ${e.chain_id} record ${e.seq} has another hash than in ${anchored.where}`);
  else if (!anchored) chain.anchors.set(e.seq, { hash: e.hash, where: at });
  if (e.closed && !chain.closed) chain.closed = { seq: e.seq, where: at };
}
