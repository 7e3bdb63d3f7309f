// The frame of every console page: skip link, navigation, who is signed in (and sign out),
// the page's main content. Scripts are external module files; nothing inline.
import type { Context } from "hono";
import { html } from "hono/html";
import type { Child } from "hono/jsx";
import { CSRF_FIELD } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import type { AssetName } from "../assets.js";
import { consoleUrl } from "../paths.js";

export type NavKey = "overview" | "graph" | "audit" | "policies" | "rollout" | "incidents" | "tests";

const NAV: ReadonlyArray<[NavKey, string, string]> = [
  ["overview", "Overview", "/"],
  ["graph", "Graph", "/graph"],
  ["audit", "Audit", "/audit"],
  ["policies", "Policies", "/policies"],
  ["rollout", "Rollout", "/rollout"],
  ["tests", "Policy tests", "/tests"],
  ["incidents", "Incidents", "/incidents"],
];

export type PageStatus = 200 | 400 | 401 | 403 | 404 | 409 | 412 | 422 | 429 | 500 | 503;

export interface PageOptions {
  title: string;
  active: NavKey | null;
  /** Page scripts besides console.js (e.g. graph.js). */
  scripts?: readonly AssetName[];
  status?: PageStatus;
}

/** The CSRF field every form that writes carries. */
export function CsrfField(props: { token: string }) {
  return <input type="hidden" name={CSRF_FIELD} value={props.token} />;
}

function Frame(props: { deps: ConsoleDeps; c: Context<ConsoleEnv>; opts: PageOptions; children: Child }) {
  const { deps, c, opts } = props;
  const session = c.get("session") ?? null;
  const scripts: AssetName[] = ["console.js", ...(opts.scripts ?? [])];
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${opts.title} · ZT console`}</title>
        {/* No favicon request (a 404 in every page's console otherwise). */}
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={deps.assets.url("console.css")} />
        {scripts.map((s) => (
          <script type="module" src={deps.assets.url(s)}></script>
        ))}
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href={consoleUrl("/")}>
            ZT console
          </a>
          {session !== null && (
            <nav aria-label="Console sections">
              <ul>
                {NAV.map(([key, label, path]) => (
                  <li>
                    <a href={consoleUrl(path)} aria-current={key === opts.active ? "page" : undefined}>
                      {label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {session !== null && (
            <div class="who">
              <span>
                {session.sub} <span class="badge info">{session.role === "admin" ? "zt-admin" : "reader"}</span>
              </span>
              {session.via === "proxy" ? (
                // The access proxy's session is the session: it signs out (here and at the identity provider).
                <a class="signout" href="/.zt/logout">
                  Sign out
                </a>
              ) : (
                <form method="post" action={consoleUrl("/logout")}>
                  <CsrfField token={deps.keys.csrfToken(session)} />
                  <button type="submit">Sign out</button>
                </form>
              )}
            </div>
          )}
        </header>
        <main id="main" tabindex={-1}>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** Renders a whole page with its doctype. */
export function page(c: Context<ConsoleEnv>, deps: ConsoleDeps, opts: PageOptions, body: Child): Response | Promise<Response> {
  return c.html(
    html`<!DOCTYPE html>${(
      <Frame deps={deps} c={c} opts={opts}>
        {body}
      </Frame>
    )}`,
    opts.status ?? 200,
  );
}
