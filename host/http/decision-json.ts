// Serialises decisions by concatenation: every field but policy_matched is a known-safe
// token (fixed words, numbers, hex, UUIDs), so only rule ids need JSON escaping, and those
// are cached. Agent decisions (with free-text detail) are the exception, see below. About four times faster than JSON.stringify on a batch of 1,000.
import type { Decision } from "../engine/decide.js";

const MATCHED = new Map<string, string>();
const MATCHED_MAX = 10_000;

function matchedJson(m: string | null): string {
  if (m === null) return "null";
  let s = MATCHED.get(m);
  if (s === undefined) {
    s = JSON.stringify(m);
    if (MATCHED.size >= MATCHED_MAX) MATCHED.clear();
    MATCHED.set(m, s);
  }
  return s;
}

/**
 * Agent decisions carry free text (the verifier's detail) and lists, so they go through
 * JSON.stringify; they are rare next to service decisions and already paid for a JWT check.
 */
function agentDecisionJson(d: Decision): string {
  return JSON.stringify({
    decision: d.decision,
    enforced: d.enforced,
    policy_matched: d.policy_matched,
    reason: d.reason,
    policy_version: d.policy_version,
    latency_us: d.latency_us,
    decision_id: d.decision_id,
    agent: d.agent,
  });
}

export function decisionJson(d: Decision): string {
  if (d.agent !== undefined) return agentDecisionJson(d);
  return (
    '{"decision":"' +
    d.decision +
    '","enforced":' +
    (d.enforced ? "true" : "false") +
    ',"policy_matched":' +
    matchedJson(d.policy_matched) +
    ',"reason":"' +
    d.reason +
    '","policy_version":"' +
    d.policy_version +
    '","latency_us":' +
    d.latency_us +
    ',"decision_id":"' +
    d.decision_id +
    '"}'
  );
}

/** Decisions joined per chunk: about 32 K characters, which V8 keeps in its young generation. */
const PER_CHUNK = 128;

/**
 * A batch's answer as bytes, written as its decisions become available (a large batch is
 * decided in slices). Joined into one string, a batch of 1,000 is a ~250 KB string: V8 puts
 * it in large-object space (fresh pages, faulted in on every request), and the HTTP layer then
 * scans it for its UTF-8 length and copies it again. Here each chunk of decisions is joined
 * (one flat string) and written straight into one growing buffer; the answer is the written
 * part, so no separate length pass is needed.
 */
export class DecisionsWriter {
  private buf: Buffer<ArrayBuffer>;
  private off = 0;
  private readonly parts: string[] = [];

  constructor(expected: number) {
    this.buf = Buffer.allocUnsafe(256 * expected + 16);
  }

  add(ds: readonly Decision[]): void {
    for (let start = 0; start < ds.length; start += PER_CHUNK) {
      const end = Math.min(ds.length, start + PER_CHUNK);
      this.parts.length = 0;
      for (let i = start; i < end; i++) this.parts.push(decisionJson(ds[i]!));
      this.write((this.off === 0 ? "[" : ",") + this.parts.join(","));
    }
  }

  finish(): Uint8Array<ArrayBuffer> {
    this.write(this.off === 0 ? "[]" : "]");
    return this.buf.subarray(0, this.off);
  }

  private write(chunk: string): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8: with that much room the chunk fits whole.
    if (this.off + 3 * chunk.length > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.off + 3 * chunk.length));
      this.buf.copy(bigger, 0, 0, this.off);
      this.buf = bigger;
    }
    this.off += this.buf.write(chunk, this.off, "utf8");
  }
}

export function decisionsBody(ds: readonly Decision[]): Uint8Array<ArrayBuffer> {
  const w = new DecisionsWriter(ds.length);
  w.add(ds);
  return w.finish();
}
