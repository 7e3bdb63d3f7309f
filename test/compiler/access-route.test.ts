// AccessRoute documents (companion kind): the validated model, every error as file:line:col
// (golden), the action mapping, and path globs against a plain regular-expression reference.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { actionMatcher } from "../../compiler/access-route/actions.js";
import { loadRouteSet, parseRouteSet } from "../../compiler/access-route/load.js";
import type { HttpRoute, TcpRoute } from "../../compiler/access-route/model.js";
import { globError, globSegments, matchSegments } from "../../compiler/access-route/path-glob.js";
import { validateCompanions } from "../../compiler/companions.js";
import { formatDiagnostic } from "../../compiler/diagnostics.js";
import { loadPolicyFiles } from "../../compiler/load.js";
import { RouteTable } from "../../host/proxy/route-table.js";

const DIR = "test/compiler/fixtures/routes";
const golden = (name: string): string[] => readFileSync(`${DIR}/${name}.expected`, "utf8").trimEnd().split("\n");

describe("AccessRoute documents", () => {
  it("loads HTTP and TCP routes with their defaults", async () => {
    const r = await loadRouteSet([`${DIR}/good.yaml`]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const byName = new Map(r.routes.map((x) => [x.name, x]));
    const grafana = byName.get("grafana") as HttpRoute;
    expect(grafana).toMatchObject({ kind: "http", host: "grafana.ops.hanzo.test", prefix: "/", stripPrefix: false, service: "gateway", preserveHost: false, websockets: true });
    expect(grafana.upstream.href).toBe("https://grafana.monitoring.svc:3000/base");
    expect(grafana.upstreamSpiffeId).toBe("spiffe://hanzo.ai/hanzo-k8s/monitoring/grafana");
    expect(grafana.credential).toEqual({ svid: true, bearerTokenFile: null, impersonate: false });
    expect(grafana.at).toEqual({ file: `${DIR}/good.yaml`, line: 7, col: 3 });
    expect((byName.get("grafana-admin") as HttpRoute).prefix).toBe("/admin/");
    expect(byName.get("k8s")!.credential).toEqual({ svid: false, bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token", impersonate: true });
    const pg = byName.get("postgres") as TcpRoute;
    expect(pg).toMatchObject({ kind: "tcp", host: "db.ops.hanzo.test", port: 5432, upstreamHost: "postgres.hanzo.svc", upstreamPort: 5432, upstreamTls: false, action: "write" });
    expect((byName.get("postgres-sidecar") as TcpRoute).upstreamTls).toBe(true);
  });

  it("reports every problem of a bad document as file:line:col (golden)", async () => {
    const r = await loadRouteSet([`${DIR}/bad.yaml`]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map(formatDiagnostic)).toEqual(golden("bad"));
  });

  it("refuses two routes for one name, host+prefix or host:port across files (golden)", async () => {
    const r = await loadRouteSet([`${DIR}/dup`]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map(formatDiagnostic)).toEqual(golden("dup"));
  });

  it("is a companion kind: the policy loader sets routes aside and the companion validators check them", async () => {
    const r = await loadPolicyFiles([`${DIR}/good.yaml`, "policies"]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.set.policies.map((p) => p.name).sort()).toEqual(["hanzo-core-policy", "production-access"]);
    expect(r.companions.filter((c) => c.kind === "AccessRoute")).toHaveLength(5);
    expect(validateCompanions(r.companions)).toEqual([]);
    const dup = await loadPolicyFiles([`${DIR}/dup`]);
    expect(dup.ok && validateCompanions(dup.companions).map(formatDiagnostic)).toEqual(golden("dup"));
  });

  it("routes beside policies in one file are found; a broken policy in that file is reported", () => {
    const policy = readFileSync("policies/production-access.yaml", "utf8");
    const route = "apiVersion: zt.hanzo.ai/v1\nkind: AccessRoute\nmetadata: {name: r}\nspec: {from: 'https://r.test', service: chat, to: 'https://chat'}\n";
    const ok = parseRouteSet(new Map([["mixed.yaml", `${policy}\n---\n${route}`]]));
    expect(ok.ok && ok.routes.map((x) => x.name)).toEqual(["r"]);
    const bad = parseRouteSet(new Map([["mixed.yaml", `${policy.replace("role: sre", "role: [sre]")}\n---\n${route}`]]));
    expect(bad.ok).toBe(false);
  });
});

describe("action mapping", () => {
  const route = (actions: HttpRoute["actions"]) => actionMatcher({ actions });
  const segs = (p: string) => p.slice(1).split("/");

  it("defaults: GET/HEAD/OPTIONS are read, every other method write", () => {
    const m = route([]);
    for (const method of ["GET", "HEAD", "OPTIONS"]) expect(m.action(method, segs("/x"))).toBe("read");
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"]) expect(m.action(method, segs("/x"))).toBe("write");
  });

  it("the first listed rule whose methods and path match decides; then the defaults", () => {
    const at = { file: "f", line: 1, col: 1 };
    const m = route([
      { methods: null, path: "/logs/**", action: "logs", at },
      { methods: ["POST"], path: "/api/*/restart", action: "restart", at },
      { methods: ["GET"], path: null, action: "metrics", at },
    ]);
    expect(m.action("DELETE", segs("/logs"))).toBe("logs");
    expect(m.action("GET", segs("/logs/chat/today"))).toBe("logs");
    expect(m.action("POST", segs("/api/chat/restart"))).toBe("restart");
    expect(m.action("POST", segs("/api/chat/stop"))).toBe("write");
    expect(m.action("POST", segs("/api//restart"))).toBe("write");
    expect(m.action("GET", segs("/"))).toBe("metrics");
    expect(m.action("HEAD", segs("/"))).toBe("read");
  });
});

/** The reference: a glob as one anchored regular expression over the path text. */
function globRegex(glob: string): RegExp {
  const segs = glob.slice(1).split("/");
  let re = "";
  for (const s of segs) {
    if (s === "**") re += "(?:/.*)?";
    else if (s === "*") re += "/[^/]+";
    else re += "/" + s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  // "/**" alone still needs the leading "/" of every path.
  return new RegExp(`^${re === "(?:/.*)?" ? "/.*" : re}$`);
}

describe("path globs", () => {
  const seg = fc.constantFrom("a", "b", "logs", "x.y", "", "*", "**");
  const pathSeg = fc.constantFrom("a", "b", "logs", "x.y", "", "c-d");
  const glob = fc.array(seg, { minLength: 1, maxLength: 5 }).map((s) => "/" + s.join("/")).filter((g) => globError(g) === null);
  const path = fc.array(pathSeg, { minLength: 1, maxLength: 6 }).map((s) => "/" + s.join("/"));

  it("match exactly what the regular-expression reference matches", () => {
    fc.assert(
      fc.property(glob, path, (g, p) => {
        expect(matchSegments(globSegments(g), p.slice(1).split("/"))).toBe(globRegex(g).test(p));
      }),
      { numRuns: 5000 },
    );
  });

  it("refuses globs that could not mean one thing", () => {
    expect(globError("logs/**")).toMatch(/start with/);
    expect(globError("/a/**/b")).toMatch(/last segment/);
    expect(globError("/a*")).toMatch(/whole segments/);
    expect(globError("/a/../b")).toMatch(/normalised/);
    expect(globError("/a%2fb")).toMatch(/must not contain/);
    expect(globError("/a/*/b/**")).toBeNull();
  });
});

describe("route table", () => {
  const at = { file: "f", line: 1, col: 1 };
  const http = (name: string, host: string, prefix: string): HttpRoute => ({
    kind: "http", name, host, prefix, stripPrefix: false, service: "chat", upstream: new URL("https://u"), upstreamSpiffeId: null, caFile: null,
    credential: { svid: true, bearerTokenFile: null, impersonate: false }, preserveHost: false, websockets: true, actions: [], at,
  });
  /** The reference: every route of the host that contains the path, the longest prefix wins. */
  const reference = (routes: HttpRoute[], host: string, p: string): string | null => {
    let best: HttpRoute | null = null;
    for (const r of routes) {
      if (r.host !== host) continue;
      const inside = r.prefix === "/" || p === r.prefix.slice(0, -1) || p.startsWith(r.prefix);
      if (inside && (best === null || r.prefix.length > best.prefix.length)) best = r;
    }
    return best?.name ?? null;
  };

  it("picks the longest prefix of the request's host, as a linear scan does", () => {
    const prefix = fc.array(fc.constantFrom("a", "b", "ab"), { maxLength: 3 }).map((s) => (s.length === 0 ? "/" : "/" + s.join("/") + "/"));
    const routes = fc.uniqueArray(fc.tuple(fc.constantFrom("h1.test", "h2.test"), prefix), { selector: ([h, p]) => h + p, maxLength: 8 });
    const reqPath = fc.array(fc.constantFrom("a", "b", "ab", "abc", ""), { minLength: 1, maxLength: 4 }).map((s) => "/" + s.join("/"));
    fc.assert(
      fc.property(routes, fc.constantFrom("h1.test", "h2.test", "h3.test"), reqPath, (rs, host, p) => {
        const list = rs.map(([h, pre], i) => http(`r${i}`, h, pre));
        expect(new RouteTable(list).httpRoute(host, p)?.name ?? null).toBe(reference(list, host, p));
      }),
      { numRuns: 3000 },
    );
  });

  it("knows its hosts, HTTP and TCP", () => {
    const tcp: TcpRoute = { kind: "tcp", name: "db", host: "db.test", port: 5432, service: "postgres", upstreamHost: "db", upstreamPort: 5432, upstreamTls: false, upstreamSpiffeId: null, caFile: null, credential: { svid: true, bearerTokenFile: null, impersonate: false }, action: "write", at };
    const t = new RouteTable([http("w", "web.test", "/"), tcp]);
    expect([t.hasHost("web.test"), t.hasHost("db.test"), t.hasHost("other.test")]).toEqual([true, true, false]);
    expect(t.tcpRoute("db.test", 5432)?.name).toBe("db");
    expect(t.tcpRoute("db.test", 5433)).toBeNull();
  });
});
