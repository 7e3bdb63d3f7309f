// The policy set crosses from the build thread to the serving thread in pieces: one piece
// with the policies (their rules left out) and then the rules, SET_CHUNK_RULES per piece, each
// v8-serialized. The serving thread turns them back into the set a piece per turn of its
// event loop, in the background after a swap, so no single turn holds requests for the whole
// set (a 12,500-rule set is a quarter of a second of deserializing on a loaded machine); a
// reader who needs the set before that finishes gets the rest decoded at once.
import { deserialize, serialize } from "node:v8";
import type { OperatorRule, Policy, PolicySet, ServiceRule } from "../../compiler/model.js";

/** Rules per piece: about 10 ms of deserializing on a loaded 2-core machine. */
export const SET_CHUNK_RULES = 500;

type Rule = ServiceRule | OperatorRule;

export interface SetPieces {
  /** Policies with empty rule lists, and how many rules each has. */
  head: Uint8Array<ArrayBuffer>;
  /** The rules in canonical order, SET_CHUNK_RULES per piece. */
  rules: Array<Uint8Array<ArrayBuffer>>;
}

function bytes(value: unknown): Uint8Array<ArrayBuffer> {
  const b = serialize(value);
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function splitSet(set: PolicySet): SetPieces {
  const all: Rule[] = [];
  for (const p of set.policies) for (const r of p.rules) all.push(r);
  const rules: Array<Uint8Array<ArrayBuffer>> = [];
  for (let i = 0; i < all.length; i += SET_CHUNK_RULES) rules.push(bytes(all.slice(i, i + SET_CHUNK_RULES)));
  return { head: bytes({ policies: set.policies.map((p) => ({ ...p, rules: [] })), counts: set.policies.map((p) => p.rules.length) }), rules };
}

/** The buffers to transfer with a message carrying these pieces. */
export function piecesTransfer(p: SetPieces): ArrayBuffer[] {
  return [p.head.buffer, ...p.rules.map((r) => r.buffer)];
}

/** Puts the set back together, a piece at a time (step) or all at once (set). */
export class SetAssembler {
  private rules: Rule[] = [];
  private next = 0;
  private done: PolicySet | null = null;

  constructor(private pieces: SetPieces | null) {}

  /** Decodes one more piece; false once the set is whole. */
  step(): boolean {
    if (this.done) return false;
    const p = this.pieces!;
    if (this.next < p.rules.length) {
      for (const r of deserialize(p.rules[this.next]!) as Rule[]) this.rules.push(r);
      this.next++;
      return true;
    }
    const head = deserialize(p.head) as { policies: Policy[]; counts: number[] };
    let at = 0;
    const policies = head.policies.map((pol, i) => {
      const n = head.counts[i]!;
      const rules = this.rules.slice(at, at + n);
      at += n;
      return { ...pol, rules } as Policy;
    });
    this.done = { policies };
    this.pieces = null;
    this.rules = [];
    return false;
  }

  get set(): PolicySet {
    while (this.step());
    return this.done!;
  }

  /** Decodes the pieces one per turn of the event loop (setImmediate lets I/O in between). */
  background(): void {
    const turn = (): void => {
      if (this.step()) setImmediate(turn);
    };
    setImmediate(turn);
  }
}
