// Where the console lives on the API listener, and how its pages link to each other.
export const BASE = "/console";

export type Params = Record<string, string | number | boolean | null | undefined>;

/** `${BASE}${path}` with the non-empty parameters as a query string; "/" is the overview, `${BASE}` itself. */
export function consoleUrl(path: string, params: Params = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return `${BASE}${path === "/" ? "" : path}${s ? "?" + s : ""}`;
}

/** A `next` parameter is followed only to a console page of this origin. */
export function safeNext(next: string | null | undefined): string {
  if (typeof next !== "string" || !(next === BASE || next.startsWith(BASE + "/") || next.startsWith(BASE + "?")) || /[\\\r\n]/.test(next)) return BASE;
  return next;
}
