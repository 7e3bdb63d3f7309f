// One path for the decision and for the upstream: the request path is normalised (dot segments
// resolved, repeated slashes merged) and the normalised form is what the action globs match and
// what the upstream receives. Encoded slashes, backslashes and dots, control characters and
// NULs are refused: they are how a path means one thing to a proxy and another to a server.

// eslint-disable-next-line no-control-regex -- control characters are what is refused here
const FORBIDDEN_QUERY = /[\u0000-\u001f\u007f#]/;

export type NormalisedPath =
  | { readonly ok: true; readonly path: string; readonly query: string; readonly segments: readonly string[] }
  | { readonly ok: false; readonly message: string };

const FORBIDDEN_ENCODED = /%(2f|5c|2e|00)/i;
// Controls, space, DEL, backslash and anything not ASCII: a request target is ASCII (RFC 9112),
// and a client that sends raw bytes means something a server may read differently.
const FORBIDDEN_RAW = /[^\u0021-\u007e]|\\/;

export function normalisePath(rawUrl: string): NormalisedPath {
  if (!rawUrl.startsWith("/")) return { ok: false, message: "the request target must be a path (origin-form)" };
  const q = rawUrl.indexOf("?");
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? "" : rawUrl.slice(q);
  if (rawPath.length > 8192) return { ok: false, message: "the path is too long" };
  if (FORBIDDEN_ENCODED.test(rawPath)) return { ok: false, message: 'the path contains an encoded "/", "\\", "." or NUL' };
  if (FORBIDDEN_RAW.test(rawPath) || FORBIDDEN_QUERY.test(query)) return { ok: false, message: "the path contains a control character, a backslash or a byte that is not ASCII" };
  const out: string[] = [];
  const parts = rawPath.slice(1).split("/");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const last = i === parts.length - 1;
    if (p === "." || (p === "" && !last)) continue;
    if (p === "..") {
      out.pop();
      continue;
    }
    out.push(p);
  }
  // "/a/." and "/a/.." keep a trailing slash, as URL resolution does.
  const lastRaw = parts[parts.length - 1];
  if ((lastRaw === "." || lastRaw === "..") && out[out.length - 1] !== "") out.push("");
  const segments: string[] = [];
  for (const p of out) {
    try {
      segments.push(decodeURIComponent(p));
    } catch {
      return { ok: false, message: "the path has an invalid percent-encoding" };
    }
  }
  return { ok: true, path: "/" + out.join("/"), query, segments: segments.length === 0 ? [""] : segments };
}

/** The path sent upstream: the upstream's base path, then the request path (without the route prefix when stripped). */
export function upstreamPath(base: string, path: string, prefix: string, strip: boolean, query: string): string {
  let rest = path;
  if (strip && prefix !== "/") rest = path.length < prefix.length ? "/" : path.slice(prefix.length - 1);
  const b = base.endsWith("/") ? base.slice(0, -1) : base;
  return b + rest + query;
}
