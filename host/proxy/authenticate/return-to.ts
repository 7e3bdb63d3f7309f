// Where a login returns to: a path on the same public host, never anywhere else. Absolute URLs,
// scheme-relative ("//evil"), backslash tricks ("/\evil"), control characters and encoded
// slashes at the start are refused, so the login endpoint cannot be used as an open redirect.

const MAX = 2048;

/** The safe path-and-query for `raw`, or null when it could leave the host. */
export function safeReturnTo(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined || raw === "") return "/";
  if (raw.length > MAX || !raw.startsWith("/")) return null;
  // "//host" and "/\host" are scheme-relative in browsers; so are their encoded forms.
  if (/^\/[/\\]/.test(raw) || /^\/%(2f|5c)/i.test(raw)) return null;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused here
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) return null;
  let url: URL;
  try {
    url = new URL(raw, "https://proxy.invalid");
  } catch {
    return null;
  }
  if (url.origin !== "https://proxy.invalid") return null;
  return url.pathname + url.search;
}
