// What the proxy answers itself: a small HTML page for a browser, JSON for scripts (the same
// error shape as the API's: {"error": {"code", "message", ...}}), never a 302 to an HTML login
// page for a script. Pages escape every value and forbid framing and scripts.
import type { IncomingHttpHeaders } from "node:http";

/** A top-level browser navigation (may be redirected to the login page), not a script or XHR. */
export function isNavigation(method: string, headers: IncomingHttpHeaders): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  if (headers["x-requested-with"] !== undefined) return false;
  const mode = headers["sec-fetch-mode"];
  if (mode !== undefined && mode !== "navigate") return false;
  const accept = headers.accept ?? "";
  return accept.includes("text/html");
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE_HEADERS: Record<string, string> = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  // form-action allows https: because sign-out posts here and is then redirected to the issuer.
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https:; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  // Same-origin only: the proxy's own forms must carry their Origin (CSRF checks), nobody else learns a URL.
  "referrer-policy": "same-origin",
};

export interface PageOptions {
  readonly status: number;
  readonly title: string;
  readonly message: string;
  /** Machine-readable code (JSON `error.code`, shown small on the page). */
  readonly code: string;
  /** Shown as a link on the page and given as `login_url` in JSON. */
  readonly loginUrl?: string;
  readonly decisionId?: string;
  /** A form posting to this path with one button (e.g. sign out), and optionally one text field. */
  readonly form?: { readonly action: string; readonly button: string; readonly field?: { readonly name: string; readonly label: string } };
  readonly headers?: Record<string, string | string[]>;
}

function html(o: PageOptions): string {
  const link = o.loginUrl ? `<p><a href="${escape(o.loginUrl)}">Sign in</a></p>` : "";
  const f = o.form;
  const field = f?.field ? `<label>${escape(f.field.label)} <input name="${escape(f.field.name)}" required></label> ` : "";
  const form = f ? `<form method="post" action="${escape(f.action)}">${field}<button type="submit">${escape(f.button)}</button></form>` : "";
  const id = o.decisionId ? ` · decision ${escape(o.decisionId)}` : "";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(o.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}small{color:#777}</style></head>
<body><h1>${escape(o.title)}</h1><p>${escape(o.message)}</p>${link}${form}<p><small>${escape(o.code)}${id}</small></p></body></html>`;
}

/** The answer for a browser (HTML) or a script (JSON), chosen by the request. */
export function page(o: PageOptions, wantsHtml: boolean): Response {
  const headers = new Headers(wantsHtml ? PAGE_HEADERS : { "content-type": "application/json", "cache-control": "no-store" });
  for (const [k, v] of Object.entries(o.headers ?? {})) for (const x of typeof v === "string" ? [v] : v) headers.append(k, x);
  if (wantsHtml) return new Response(html(o), { status: o.status, headers });
  const error: Record<string, string> = { code: o.code, message: o.message };
  if (o.loginUrl) error.login_url = o.loginUrl;
  if (o.decisionId) error.decision_id = o.decisionId;
  return new Response(JSON.stringify({ error }), { status: o.status, headers });
}

/** Whether to answer with HTML: the client asked for it. */
export function wantsHtml(headers: IncomingHttpHeaders): boolean {
  return (headers.accept ?? "").includes("text/html");
}

export function redirect(location: string, setCookies: readonly string[] = []): Response {
  const headers = new Headers({ location, "cache-control": "no-store" });
  for (const c of setCookies) headers.append("set-cookie", c);
  return new Response(null, { status: 302, headers });
}

/** What the proxy answers itself, as data (see gate.ts): a page, or a redirect. */
export interface Answer {
  readonly page?: PageOptions;
  readonly redirect?: string;
  /** Render as HTML (a browser) or JSON (a script). */
  readonly html: boolean;
}

export function answerResponse(a: Answer): Response {
  return a.redirect !== undefined ? redirect(a.redirect) : page(a.page!, a.html);
}

/** The same answer as raw HTTP/1.1 bytes, for a socket that left the HTTP server (upgrade, CONNECT). */
export async function answerBytes(a: Answer): Promise<Buffer> {
  const res = answerResponse(a);
  const body = Buffer.from(await res.arrayBuffer());
  const lines = [`HTTP/1.1 ${res.status} ${STATUS_TEXT[res.status] ?? ""}`];
  res.headers.forEach((v, k) => lines.push(`${k}: ${v}`));
  lines.push(`content-length: ${body.length}`, "connection: close");
  return Buffer.concat([Buffer.from(lines.join("\r\n") + "\r\n\r\n"), body]);
}

const STATUS_TEXT: Record<number, string> = { 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable" };
