// The time window of replay and suggest: RFC 3339 timestamps, or durations back from now
// ("90m", "24h", "28d", "2w"); by default the last 24 hours. Shared by the CLI and the API.
import { parseTime } from "../audit/query.js";
import { parseSpiffeId, parseSpiffePattern } from "../../compiler/spiffe.js";

export const DEFAULT_WINDOW_MS = 24 * 60 * 60 * 1000;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export type WindowResult = { ok: true; since: Date; until: Date; destination: string | null } | { ok: false; path: string; message: string };

function instant(v: string, path: string, now: Date): { ok: true; at: Date } | { ok: false; path: string; message: string } {
  const m = /^(\d{1,6})([smhdw])$/.exec(v);
  if (m) return { ok: true, at: new Date(now.getTime() - Number(m[1]) * UNIT_MS[m[2]!]!) };
  const t = parseTime(v, path);
  if (!t.ok) return { ok: false, path, message: `${t.error.message}, or a duration back from now such as "24h" or "28d"` };
  return { ok: true, at: t.value };
}

/** Checks since/until/destination as given (undefined: default); errors name the parameter. */
export function parseWindow(raw: { since?: string | undefined; until?: string | undefined; destination?: string | undefined }, names: { since: string; until: string; destination: string }, now = new Date()): WindowResult {
  let until = now;
  if (raw.until !== undefined) {
    const u = instant(raw.until, names.until, now);
    if (!u.ok) return u;
    until = u.at;
  }
  let since = new Date(until.getTime() - DEFAULT_WINDOW_MS);
  if (raw.since !== undefined) {
    const s = instant(raw.since, names.since, now);
    if (!s.ok) return s;
    since = s.at;
  }
  if (since.getTime() >= until.getTime()) return { ok: false, path: names.since, message: `must be before ${names.until} (${since.toISOString()} is not before ${until.toISOString()})` };
  let destination: string | null = null;
  if (raw.destination !== undefined) {
    const d = raw.destination;
    const p = d.includes("*") ? parseSpiffePattern(d) : parseSpiffeId(d);
    if (!p.ok) return { ok: false, path: names.destination, message: `invalid SPIFFE ${d.includes("*") ? "pattern" : "ID"} "${d}": ${p.error}` };
    destination = d;
  }
  return { ok: true, since, until, destination };
}
