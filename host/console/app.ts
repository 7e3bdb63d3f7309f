// The console's routes under /console: security headers on everything, the hashed assets and
// the sign-in page for anyone, every other page behind a session, every write behind the CSRF
// token (and the admin role where it changes something).
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requireCsrf, requireSession } from "./auth.js";
import type { ConsoleDeps, ConsoleEnv } from "./context.js";
import { auditRoutes } from "./pages/audit.js";
import { diffRoutes } from "./pages/diff.js";
import { graphRoutes } from "./pages/graph.js";
import { historyRoutes } from "./pages/history.js";
import { incidentsRoutes } from "./pages/incidents.js";
import { loginRoutes } from "./pages/login.js";
import { overviewRoutes } from "./pages/overview.js";
import { policiesRoutes } from "./pages/policies.js";
import { rolloutRoutes } from "./pages/rollout.js";
import { rolloutToolsRoutes } from "./pages/rollout-tools.js";
import { testsRoutes } from "./pages/tests.js";
import { BASE } from "./paths.js";
import { securityHeaders } from "./security-headers.js";

const YEAR_SECONDS = 365 * 24 * 60 * 60;

export function consoleApp(deps: ConsoleDeps): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>().basePath(BASE);
  app.use("*", securityHeaders());
  app.onError((err, c) => {
    deps.core.log.error("console error", { err, request_id: c.get("requestId"), path: c.req.path });
    return c.html(
      `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error · ZT console</title></head><body><main><h1>Something went wrong</h1><p>The engine log has the details (request id ${c.get("requestId") ?? "unknown"}).</p><p><a href="${BASE}">Back to the overview</a></p></main></body></html>`,
      500,
    );
  });

  app.get("/assets/:file", (c) => {
    const a = deps.assets.byFile(c.req.param("file"));
    if (!a) return c.json({ error: { code: "not_found", message: "no such asset" } }, 404);
    const headers: Record<string, string> = {
      "content-type": a.type,
      "cache-control": `public, max-age=${YEAR_SECONDS}, immutable`,
      etag: a.etag,
      vary: "accept-encoding",
    };
    if (c.req.header("if-none-match") === a.etag) return c.body(null, 304, headers);
    if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) return c.body(new Uint8Array(a.gzipped), 200, { ...headers, "content-encoding": "gzip" });
    return c.body(new Uint8Array(a.body), 200, headers);
  });

  loginRoutes(app, deps);

  app.use(
    "*",
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: (c) => c.json({ error: { code: "body_too_large", message: `the form is larger than ${deps.maxBodyBytes} bytes` } }, 413),
    }),
  );
  app.use("*", requireSession(deps.keys, deps.proxySignIn));
  app.use("*", requireCsrf(deps.keys));
  overviewRoutes(app, deps);
  graphRoutes(app, deps);
  auditRoutes(app, deps);
  policiesRoutes(app, deps);
  historyRoutes(app, deps);
  diffRoutes(app, deps);
  rolloutRoutes(app, deps);
  rolloutToolsRoutes(app, deps);
  testsRoutes(app, deps);
  incidentsRoutes(app, deps);

  // The overview is /console; /console/ (a typed or bookmarked address) leads there.
  const root = new Hono<ConsoleEnv>();
  root.get(`${BASE}/`, (c) => c.redirect(BASE, 308));
  root.route("/", app);
  return root;
}
