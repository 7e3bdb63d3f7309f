// AccessRoute documents -> validated routes, every problem as file:line:col (docs/proxy.md).
// Registered as a companion kind: `zt check` runs validateAccessRoute on every AccessRoute it
// finds beside the policies, and the proxy loads its routes with the same function.
import type { Node, YAMLMap } from "yaml";
import type { Diagnostic } from "../diagnostics.js";
import { asBool, asMap, asSeq, asString, type CompanionDocument, type Ctx, documentHeader, fields, requireField, token } from "../parse.js";
import { parseSpiffeId } from "../spiffe.js";
import type { AccessRoute, ActionRule, UpstreamCredential } from "./model.js";
import { globError } from "./path-glob.js";

type Fields = Map<string, { key: Node; value: Node | null }>;

const SPEC_FIELDS = ["from", "prefix", "stripPrefix", "service", "to", "upstream", "actions", "action", "websockets"] as const;
const UPSTREAM_FIELDS = ["spiffeId", "caFile", "credential", "bearerTokenFile", "impersonate", "preserveHost", "tls"] as const;
const HTTP_ONLY = ["prefix", "stripPrefix", "actions", "websockets"] as const;
const METHOD_RE = /^[A-Z]{1,20}$/;
// RFC 1123 host names: letters, digits and "-" per label, at most 253 characters.
const HOST_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export type RouteOutcome = { route: AccessRoute | null; errors: Diagnostic[] };

function optionalBool(ctx: Ctx, f: Fields, name: string, where: string, dflt: boolean): boolean {
  const e = f.get(name);
  if (!e) return dflt;
  return asBool(ctx, e.value, `${where}.${name}`) ?? dflt;
}

/** A URL with only scheme, host and port (and, when allowed, a path); null after reporting. */
function parseUrl(ctx: Ctx, node: Node, what: string, schemes: readonly string[], allowPath: boolean): URL | null {
  const text = asString(ctx, node, what);
  if (text === null) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.err(node, `${what} "${text}" is not a URL (e.g. ${schemes[0]}://host:port)`);
    return null;
  }
  const scheme = url.protocol.slice(0, -1);
  if (!schemes.includes(scheme)) {
    const hint = scheme === "http" ? (what === "spec.to" ? ": upstreams are reached over mTLS" : ": the proxy serves TLS only") : "";
    ctx.err(node, `${what} "${text}": the scheme must be ${schemes.join(" or ")}${hint}`);
    return null;
  }
  if (url.username || url.password) ctx.err(node, `${what} "${text}" must not carry credentials (see upstream.bearerTokenFile)`);
  else if (url.search || url.hash) ctx.err(node, `${what} "${text}" must not have a query or fragment`);
  else if (!allowPath && url.pathname !== "/" && url.pathname !== "") ctx.err(node, `${what} "${text}" must not have a path${schemes[0] === "https" ? ' (use "prefix")' : ""}`);
  else return url;
  return null;
}

function hostOf(ctx: Ctx, node: Node, url: URL, what: string): string | null {
  const host = url.hostname.toLowerCase();
  if (!HOST_RE.test(host)) {
    ctx.err(node, `${what}: "${host}" is not a DNS host name (the proxy selects routes by the Host header)`);
    return null;
  }
  return host;
}

function prefixOf(ctx: Ctx, f: Fields): string {
  const e = f.get("prefix");
  if (!e) return "/";
  const p = asString(ctx, e.value, "spec.prefix", e.key);
  if (p === null) return "/";
  if (!p.startsWith("/") || /[*?#%\\]/.test(p) || /(^|\/)\.\.?(\/|$)/.test(p) || p.includes("//")) {
    ctx.err(e.value, `spec.prefix "${p}" must be a plain path starting with "/" (no "*", "?", "#", "%", "\\", "//", "." or ".." segments)`);
    return "/";
  }
  return p.endsWith("/") ? p : p + "/";
}

function actionRules(ctx: Ctx, node: Node | null): ActionRule[] {
  const seq = asSeq(ctx, node, "spec.actions");
  if (!seq) return [];
  if (seq.items.length === 0) ctx.err(seq, "spec.actions is empty: omit it for the default (GET/HEAD/OPTIONS -> read, others -> write)");
  const out: ActionRule[] = [];
  seq.items.forEach((item, i) => {
    const where = `spec.actions[${i}]`;
    const map = asMap(ctx, item as Node, where);
    if (!map) return;
    const f = fields(ctx, map, where, ["methods", "path", "action"]);
    const an = requireField(ctx, f, "action", where, map);
    const action = an ? token(ctx, an, `${where}.action`, false) : null;
    let methods: string[] | null = null;
    const me = f.get("methods");
    if (me) {
      const ms = asSeq(ctx, me.value, `${where}.methods`, me.key);
      methods = [];
      ms?.items.forEach((m, k) => {
        const s = asString(ctx, m as Node, `${where}.methods[${k}]`);
        if (s !== null && !METHOD_RE.test(s)) ctx.err(m as Node, `${where}.methods[${k}] "${s}" is not an HTTP method (upper case, e.g. GET)`);
        else if (s !== null) methods!.push(s);
      });
      if (ms && ms.items.length === 0) ctx.err(ms, `${where}.methods is empty: omit it to match every method`);
    }
    let path: string | null = null;
    const pe = f.get("path");
    if (pe) {
      path = asString(ctx, pe.value, `${where}.path`, pe.key);
      const problem = path === null ? null : globError(path);
      if (problem !== null) {
        ctx.err(pe.value, `${where}.path "${path}": ${problem}`);
        path = null;
      }
    }
    if (action !== null) out.push({ methods, path, action, at: ctx.at(map) });
  });
  return out;
}

function credentialOf(ctx: Ctx, up: Fields | null): UpstreamCredential {
  let svid = true;
  const ce = up?.get("credential");
  if (ce) {
    const c = asString(ctx, ce.value, "spec.upstream.credential", ce.key);
    if (c === "none") svid = false;
    else if (c !== null && c !== "svid") ctx.err(ce.value, `spec.upstream.credential must be "svid" (mTLS with the engine's SVID) or "none", got "${c}"`);
  }
  const bearerTokenFile = absolutePath(ctx, up, "bearerTokenFile");
  const impersonate = up ? optionalBool(ctx, up, "impersonate", "spec.upstream", false) : false;
  return { svid, bearerTokenFile, impersonate };
}

/** An optional absolute file path in spec.upstream. */
function absolutePath(ctx: Ctx, up: Fields | null, name: string): string | null {
  const e = up?.get(name);
  if (!e) return null;
  const path = asString(ctx, e.value, `spec.upstream.${name}`, e.key);
  if (path !== null && !path.startsWith("/")) {
    ctx.err(e.value, `spec.upstream.${name} must be an absolute path, got "${path}"`);
    return null;
  }
  return path;
}

function spiffeIdOf(ctx: Ctx, up: Fields | null): string | null {
  const e = up?.get("spiffeId");
  if (!e) return null;
  const s = asString(ctx, e.value, "spec.upstream.spiffeId", e.key);
  if (s === null) return null;
  const r = parseSpiffeId(s);
  if (!r.ok) {
    ctx.err(e.value, `spec.upstream.spiffeId "${s}" is not a SPIFFE ID: ${r.error}`);
    return null;
  }
  return s;
}

/** The TCP port of a URL that must name one (tcp://, tcp+https://). */
function portOf(ctx: Ctx, node: Node, url: URL, what: string): number | null {
  if (url.port === "") {
    ctx.err(node, `${what} must name a port (e.g. ${url.protocol}//${url.hostname}:5432)`);
    return null;
  }
  return Number(url.port);
}

function buildRoute(ctx: Ctx, name: string, spec: YAMLMap): AccessRoute | null {
  const f = fields(ctx, spec, "spec", SPEC_FIELDS);
  const fromNode = requireField(ctx, f, "from", "spec", spec);
  const from = fromNode ? parseUrl(ctx, fromNode, "spec.from", ["https", "tcp+https"], false) : null;
  const tcp = from?.protocol === "tcp+https:";
  const sn = requireField(ctx, f, "service", "spec", spec);
  const service = sn ? token(ctx, sn, "spec.service", false) : null;
  const toNode = requireField(ctx, f, "to", "spec", spec);
  const to = toNode ? parseUrl(ctx, toNode, "spec.to", tcp ? ["tcp"] : ["https"], !tcp) : null;
  const ue = f.get("upstream");
  const upMap = ue ? asMap(ctx, ue.value, "spec.upstream", ue.key) : null;
  const up = upMap ? fields(ctx, upMap, "spec.upstream", UPSTREAM_FIELDS) : null;
  const upstreamSpiffeId = spiffeIdOf(ctx, up);
  const caFile = absolutePath(ctx, up, "caFile");
  if (caFile !== null && upstreamSpiffeId !== null) ctx.err(up!.get("caFile")!.key, "spec.upstream.caFile and spec.upstream.spiffeId exclude each other: a SPIFFE upstream is verified with the engine's trust bundle");
  const credential = credentialOf(ctx, up);
  const host = from && fromNode ? hostOf(ctx, fromNode, from, "spec.from") : null;
  const at = ctx.at(spec);

  if (tcp) {
    for (const k of HTTP_ONLY) {
      const e = f.get(k);
      if (e) ctx.err(e.key, `spec.${k} applies to HTTP routes (from: https://…); a TCP route (from: tcp+https://…) names one "action"`);
    }
    for (const k of ["preserveHost", "bearerTokenFile", "impersonate"] as const) {
      const e = up?.get(k);
      if (e) ctx.err(e.key, `spec.upstream.${k} applies to HTTP routes only`);
    }
    const port = from && fromNode ? portOf(ctx, fromNode, from, "spec.from") : null;
    const upstreamPort = to && toNode ? portOf(ctx, toNode, to, "spec.to") : null;
    const an = requireField(ctx, f, "action", "spec (a TCP route)", spec);
    const action = an ? token(ctx, an, "spec.action", false) : null;
    const upstreamTls = up ? optionalBool(ctx, up, "tls", "spec.upstream", false) : false;
    if (!host || !service || !to || port === null || upstreamPort === null || !action) return null;
    return { kind: "tcp", name, host, port, service, upstreamHost: to.hostname, upstreamPort, upstreamTls, upstreamSpiffeId, caFile, credential, action, at };
  }

  const ae = f.get("action");
  if (ae) ctx.err(ae.key, 'spec.action applies to TCP routes; an HTTP route maps requests with "actions"');
  const te = up?.get("tls");
  if (te) ctx.err(te.key, "spec.upstream.tls applies to TCP routes; an HTTP route's upstream is always https://");
  if (from && from.port !== "" && fromNode) ctx.err(fromNode, 'spec.from of an HTTP route names no port: routes are selected by host name (and "prefix")');
  const acts = f.get("actions");
  const actions = acts ? actionRules(ctx, acts.value) : [];
  const prefix = prefixOf(ctx, f);
  const stripPrefix = optionalBool(ctx, f, "stripPrefix", "spec", false);
  const websockets = optionalBool(ctx, f, "websockets", "spec", true);
  const preserveHost = up ? optionalBool(ctx, up, "preserveHost", "spec.upstream", false) : false;
  if (!host || !service || !to) return null;
  return { kind: "http", name, host, prefix, stripPrefix, service, upstream: to, upstreamSpiffeId, caFile, credential, preserveHost, websockets, actions, at };
}

/** One AccessRoute document: the route, or null with every problem. */
export function parseAccessRoute(doc: CompanionDocument): RouteOutcome {
  const before = doc.ctx.errors.length;
  const map = asMap(doc.ctx, doc.root, "an AccessRoute document");
  const { name, spec } = map ? documentHeader(doc.ctx, map, "the AccessRoute document") : { name: null, spec: null };
  const route = spec ? buildRoute(doc.ctx, name ?? "invalid-name", spec) : null;
  const errors = doc.ctx.errors.slice(before);
  return { route: errors.length === 0 && name !== null ? route : null, errors };
}

/** The companion validator (`zt check`). */
export function validateAccessRoute(doc: CompanionDocument): Diagnostic[] {
  return parseAccessRoute(doc).errors;
}

/** Cross-route rules: unique names, one route per host+prefix and per host:port. */
export function checkRouteSet(routes: readonly AccessRoute[]): Diagnostic[] {
  const errors: Diagnostic[] = [];
  const names = new Map<string, AccessRoute>();
  const keys = new Map<string, AccessRoute>();
  for (const r of routes) {
    const key = r.kind === "http" ? `https://${r.host}${r.prefix}` : `tcp+https://${r.host}:${r.port}`;
    const where = (o: AccessRoute): string => `${o.at.file}:${o.at.line}:${o.at.col}`;
    const sameName = names.get(r.name);
    if (sameName) errors.push({ ...r.at, message: `duplicate AccessRoute name "${r.name}" (also defined at ${where(sameName)})` });
    else names.set(r.name, r);
    const sameKey = keys.get(key);
    if (sameKey) errors.push({ ...r.at, message: `${key} is already routed by "${sameKey.name}" (${where(sameKey)})` });
    else keys.set(key, r);
  }
  return errors;
}

