// Serialises decisions by concatenation: every field but policy_matched is a known-safe
// token (fixed words, numbers, hex, UUIDs), so only rule ids need JSON escaping, and those
// are cached. Agent decisions (with free-text detail) are the exception, see below. About four times faster than JSON.stringify on a batch of 1,000.
import type { Decision } from "./decide.js";

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

/** Strings up to this many UTF-16 units stay in V8's young generation when flattened. */
const CHUNK = 32 * 1024;

/**
 * A batch's answer as bytes. Joined into one string, a batch of 1,000 is a ~250 KB string:
 * V8 puts it in large-object space (fresh pages, faulted in on every request), and the HTTP
 * layer then scans it for its UTF-8 length and copies it again. Here the decisions are
 * joined into chunks of about 32 K characters, each written into one buffer.
 */
export function decisionsBody(ds: readonly Decision[]): Uint8Array<ArrayBuffer> {
  const chunks: string[] = [];
  let chunk = "[";
  for (let i = 0; i < ds.length; i++) {
    chunk += (i === 0 ? "" : ",") + decisionJson(ds[i]!);
    if (chunk.length >= CHUNK) {
      chunks.push(chunk);
      chunk = "";
    }
  }
  chunks.push(chunk + "]");
  let total = 0;
  for (const c of chunks) total += Buffer.byteLength(c, "utf8");
  const buf = Buffer.allocUnsafe(total);
  let off = 0;
  for (const c of chunks) off += buf.write(c, off, "utf8");
  return buf;
}
