// The time window a page looks at: a preset ("last 24 hours") or explicit since/until. Times
// are UTC, typed as RFC 3339 or as a browser's datetime-local value (read as UTC).
import { parseTime } from "../audit/query.js";

export const WINDOWS: ReadonlyArray<[string, string, number]> = [
  ["15m", "last 15 minutes", 15 * 60],
  ["1h", "last hour", 60 * 60],
  ["6h", "last 6 hours", 6 * 60 * 60],
  ["24h", "last 24 hours", 24 * 60 * 60],
  ["7d", "last 7 days", 7 * 24 * 60 * 60],
  ["30d", "last 30 days", 30 * 24 * 60 * 60],
];

export interface TimeWindow {
  since: Date;
  until: Date;
  /** The preset chosen, or "" for explicit times. */
  preset: string;
}

/** "2026-02-23T14:30" (datetime-local) or RFC 3339 → RFC 3339; "" stays "". */
export function normaliseTime(v: string | undefined): string {
  const t = (v ?? "").trim();
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(t)) return `${t}:00Z`;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(t)) return `${t}Z`;
  return t;
}

/** The window of a query, or the message saying what is wrong with it. */
export function parseWindow(q: { window?: string; since?: string; until?: string }, fallback: string, now: Date = new Date()): { ok: true; value: TimeWindow } | { ok: false; error: string } {
  const since = normaliseTime(q.since);
  const until = normaliseTime(q.until);
  if (since !== "" || until !== "") {
    const u = until === "" ? { ok: true as const, value: now } : parseTime(until, "until");
    if (!u.ok) return { ok: false, error: `until ${u.error.message}` };
    const s = since === "" ? { ok: true as const, value: new Date(u.value.getTime() - 24 * 3600 * 1000) } : parseTime(since, "since");
    if (!s.ok) return { ok: false, error: `since ${s.error.message}` };
    if (s.value.getTime() >= u.value.getTime()) return { ok: false, error: "since must be before until" };
    return { ok: true, value: { since: s.value, until: u.value, preset: "" } };
  }
  const key = q.window ?? fallback;
  const w = WINDOWS.find(([k]) => k === key);
  if (!w) return { ok: false, error: `unknown window "${key}" (${WINDOWS.map(([k]) => k).join(", ")})` };
  return { ok: true, value: { since: new Date(now.getTime() - w[2] * 1000), until: now, preset: w[0] } };
}
