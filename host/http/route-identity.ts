// Which identity every route of the API port needs: one table, one line per route, enforced
// by one middleware (identity-gate.ts) in front of every request. A route without a line here
// stops the engine from starting, naming the route (see host/http/README.md, "A new route").
// docs/identity.md "Routes and identities" holds the same table; a test keeps them equal.
import type { Context, Hono } from "hono";
import { inspectRoutes } from "hono/dev";
import { matchedRoutes } from "hono/route";
import type { IdentityRule } from "../identity/caller.js";

/**
 * `"<METHOD> <path as registered with Hono>": rule`, routes mounted by extensions included;
 * `"PREFIX <path>"`: every route at or under that path, and requests there that no route
 * answers, for a room that authenticates every request itself (a line for one route wins);
 * `"CLAIMED <extension name>"` for the requests an extension claims whole (by Host).
 * Rules (host/identity/caller.ts): svid, reader, metrics, admin, own.
 */
export const ROUTE_IDENTITY: Readonly<Record<string, IdentityRule>> = {
  "POST /v1/evaluate": "svid", // and each item's source must be the caller (routes/evaluate.ts)
  "GET /v1/policies": "reader",
  "GET /v1/policies/:name": "reader",
  "PUT /v1/policies/:name": "admin",
  "DELETE /v1/policies/:name": "admin",
  // the shared state (routes/policies.ts, routes/rollout.ts; docs/state.md)
  "GET /v1/policies/:name/history": "reader",
  "GET /v1/policies/:name/history/:revision": "reader",
  "POST /v1/policies/:name/rollback": "admin",
  "GET /v1/rollout": "reader",
  "PUT /v1/rollout": "admin",
  "GET /v1/replicas": "admin",
  "GET /v1/module.wasm": "reader",
  "GET /v1/incidents": "admin",
  "GET /v1/incidents/:id": "admin",
  "PUT /v1/incidents/:id": "admin",
  "DELETE /v1/incidents/:id": "admin",
  "GET /v1/audit": "admin",
  "GET /v1/graph": "admin",
  "POST /v1/audit/ingest": "admin",
  "GET /v1/audit/checkpoint": "admin",
  "GET /v1/audit/checkpoint/key": "admin",
  "GET /metrics": "metrics",
  // policy sync for sidecars (routes/policy-image.ts, routes/sidecars.ts)
  "GET /v1/filter.wasm": "reader",
  "GET /v1/policy-image": "admin", // like audit ingest: what sidecars authenticate with
  "GET /v1/sidecars": "admin",
  // rollout (host/rollout/extension.ts)
  "POST /v1/tests": "admin",
  "POST /v1/diff": "admin",
  "POST /v1/replay": "admin",
  "GET /v1/suggest": "admin",
  // the Phase 4 admission gate: the kube-apiserver calls with no client certificate or one of its
  // own CA, never an SVID; read-only, it answers whether an identity is declared (docs/rollout.md)
  "POST /v1/admission/:domain/:cluster": "own",
  // console (host/console): its own session, signed in with the admin token; browsers hold no SVID
  "PREFIX /console": "own",
  // the operator access proxy (host/proxy): every request for its route hosts; it authenticates
  // operators itself (OIDC session cookie or token), and its browsers hold no SVID
  "CLAIMED proxy": "own",
};

/** A request no route answers (a 404), outside every PREFIX line, needs an SVID: no one else learns which paths exist. */
export const UNMATCHED_RULE: IdentityRule = "svid";

export interface RegisteredRoute {
  readonly method: string;
  readonly path: string;
}

/** The key of a route in ROUTE_IDENTITY. */
export function routeKey(r: RegisteredRoute): string {
  return `${r.method} ${r.path}`;
}

export function claimKey(extensionName: string): string {
  return `CLAIMED ${extensionName}`;
}

const PREFIX = "PREFIX ";

/** The PREFIX lines of `table`, longest path first. */
function prefixLines(table: Readonly<Record<string, IdentityRule>>): Array<{ path: string; rule: IdentityRule }> {
  return Object.entries(table)
    .filter(([k]) => k.startsWith(PREFIX))
    .map(([k, rule]) => ({ path: k.slice(PREFIX.length), rule }))
    .sort((a, b) => b.path.length - a.path.length);
}

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`);
}

/**
 * Whether a registered handler answers requests (and so needs a rule). Middleware registered
 * with `app.use` (method ALL, taking `next`) does not; anything registered for a method does,
 * whatever its arity, so a route cannot escape the table by taking `next`.
 */
function answers(r: { method: string; isMiddleware: boolean }): boolean {
  return r.method !== "ALL" || !r.isMiddleware;
}

/** Any Hono app, whatever its environment type: only its registered routes are read. */
export type AnyApp = { readonly routes: Hono["routes"] };

/** Every route of `app` that answers requests, in registration order, without repeats. */
export function routesOf(app: AnyApp): RegisteredRoute[] {
  const seen = new Set<string>();
  const out: RegisteredRoute[] = [];
  for (const r of inspectRoutes(app as Hono)) {
    if (!answers(r) || seen.has(routeKey(r))) continue;
    seen.add(routeKey(r));
    out.push({ method: r.method, path: r.path });
  }
  return out;
}

export class MissingIdentityRule extends Error {
  constructor(readonly missing: readonly string[]) {
    super(
      `${missing.length === 1 ? "a route has" : `${missing.length} routes have`} no identity rule: ${missing.join(", ")}. ` +
        "Add one line per route to ROUTE_IDENTITY in host/http/route-identity.ts and to the table in docs/identity.md (see host/http/README.md)",
    );
    this.name = "MissingIdentityRule";
  }
}

/** A route of the API port and the rule it gets; claims are `{method: "CLAIMED", path: <extension name>}`. */
export interface RouteLine extends RegisteredRoute {
  readonly rule: IdentityRule;
}

export interface RouteRules {
  /** Every route and claim in effect, in registration order, with its rule. */
  readonly lines: readonly RouteLine[];
  /** The rule of the route that will answer `c`: the first matching route; UNMATCHED_RULE when none. */
  of(c: Context): IdentityRule;
  /** The rule for requests the named extension claims. */
  claimed(extensionName: string): IdentityRule;
  /**
   * The rule of `method path` when it is the first route registered that answers requests (so
   * the first to match any request for it, as `of` finds it); null otherwise.
   */
  first(method: string, path: string): IdentityRule | null;
}

/**
 * The rules of `app` (every route registered) and of the claiming extensions. Throws
 * MissingIdentityRule listing every route and claim without a line in `table`.
 */
export function routeRules(app: AnyApp, claimers: readonly string[], table: Readonly<Record<string, IdentityRule>> = ROUTE_IDENTITY): RouteRules {
  const hono = app as Hono;
  const byRoute = new WeakMap<object, IdentityRule>();
  const missing: string[] = [];
  const lines: RouteLine[] = [];
  const prefixes = prefixLines(table);
  const byPrefix = (path: string): IdentityRule | undefined => prefixes.find((p) => under(path, p.path))?.rule;
  const inspected = inspectRoutes(hono);
  let first: RouteLine | null = null;
  hono.routes.forEach((r, i) => {
    if (!answers(inspected[i]!)) return;
    first ??= { method: r.method, path: r.path, rule: table[routeKey(r)] ?? byPrefix(r.path) ?? UNMATCHED_RULE };
    const key = routeKey(r);
    const rule = table[key] ?? byPrefix(r.path);
    if (rule === undefined) {
      if (!missing.includes(key)) missing.push(key);
      return;
    }
    byRoute.set(r, rule);
    if (!lines.some((l) => routeKey(l) === key)) lines.push({ method: r.method, path: r.path, rule });
  });
  for (const name of claimers) {
    const rule = table[claimKey(name)];
    if (rule === undefined) missing.push(claimKey(name));
    else lines.push({ method: "CLAIMED", path: name, rule });
  }
  if (missing.length > 0) throw new MissingIdentityRule(missing);
  return {
    lines,
    of(c: Context): IdentityRule {
      for (const r of matchedRoutes(c)) {
        const rule = byRoute.get(r);
        if (rule !== undefined) return rule;
      }
      return byPrefix(c.req.path) ?? UNMATCHED_RULE;
    },
    claimed: (name) => table[claimKey(name)]!,
    first: (method, path) => (first !== null && first.method === method && first.path === path ? first.rule : null),
  };
}
