// A WireGuardMesh companion document -> validated model, every problem as file:line:col.
// Above all it refuses key material anywhere but a publicKey field (secrets.ts).
import { isMap, isScalar, isSeq, type Node, type YAMLMap } from "yaml";
import { type Diagnostic, sortDiagnostics } from "../diagnostics.js";
import type { SourceRef } from "../model.js";
import { asMap, asSeq, asString, type CompanionDocument, type Ctx, documentHeader, fields, requireField, typeName } from "../parse.js";
import { type Cidr, hostCidr, isReservedHost, overlaps, parseCidr, parseIp, contains } from "./cidr.js";
import { isWireGuardKey } from "./keys.js";
import {
  DEFAULT_GATEWAY_LABELS,
  DEFAULT_GATEWAY_NAMESPACE,
  DEFAULT_KEEPALIVE,
  DEFAULT_LISTEN_PORT,
  DEFAULT_METRICS_PORT,
  type MeshCluster,
  type MeshEndpoint,
  MESH_KIND,
  type WireGuardMesh,
} from "./model.js";
import { secretFindings } from "./secrets.js";

export type MeshParse = { ok: true; mesh: WireGuardMesh } | { ok: false; errors: Diagnostic[] };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const KEY_CREATED = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/;
const CLUSTER_FIELDS = ["name", "address", "endpoint", "listenPort", "publicKey", "keyCreated", "privateKeyFile", "allowedIPs", "persistentKeepalive"] as const;

function integer(ctx: Ctx, node: Node | null, what: string, lo: number, hi: number): number | null {
  if (node && isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value)) {
    if (node.value >= lo && node.value <= hi) return node.value;
    ctx.err(node, `${what} ${node.value} is out of range (${lo}-${hi})`);
    return null;
  }
  ctx.err(node, `${what} must be an integer, got ${typeName(node)}`);
  return null;
}

function cidr(ctx: Ctx, node: Node | null, what: string, fallback?: Node | null): Cidr | null {
  const text = asString(ctx, node, what, fallback);
  if (text === null) return null;
  const r = parseCidr(text);
  if (!r.ok) ctx.err(node, `${what} "${text}" ${r.error}`);
  return r.ok ? r.cidr : null;
}

export function parseEndpoint(text: string): MeshEndpoint | string {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return "must be host:port (an IPv6 address in brackets, e.g. [2001:db8::1]:51820)";
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `port ${port} is out of range (1-65535)`;
  if (m[1] !== undefined) {
    if (parseIp(m[1])?.family !== 6) return `"${m[1]}" is not an IPv6 address`;
    return { host: m[1], port, text };
  }
  const host = m[2]!;
  if (parseIp(host) === null && (!HOSTNAME.test(host) || /^[\d.]+$/.test(host))) return `"${host}" is neither an IP address nor a DNS name`;
  return { host, port, text };
}

function endpoint(ctx: Ctx, node: Node | null, what: string): MeshEndpoint | null {
  const text = asString(ctx, node, what);
  if (text === null) return null;
  const r = parseEndpoint(text);
  if (typeof r === "string") {
    ctx.err(node, `${what} "${text}" ${r}`);
    return null;
  }
  return r;
}

function gateway(ctx: Ctx, node: Node | null | undefined): WireGuardMesh["gateway"] | null {
  if (node === undefined) return { namespace: DEFAULT_GATEWAY_NAMESPACE, podLabels: DEFAULT_GATEWAY_LABELS, metricsPort: DEFAULT_METRICS_PORT };
  const map = asMap(ctx, node, "spec.gateway");
  if (!map) return null;
  const f = fields(ctx, map, "spec.gateway", ["namespace", "podLabels", "metricsPort"]);
  let namespace = DEFAULT_GATEWAY_NAMESPACE;
  const ne = f.get("namespace");
  if (ne) {
    const s = asString(ctx, ne.value, "spec.gateway.namespace", ne.key);
    if (s !== null && !DNS_LABEL.test(s)) ctx.err(ne.value, `spec.gateway.namespace "${s}" is not a Kubernetes namespace name`);
    if (s !== null) namespace = s;
  }
  let podLabels: Record<string, string> = { ...DEFAULT_GATEWAY_LABELS };
  const le = f.get("podLabels");
  if (le) {
    const lm = asMap(ctx, le.value, "spec.gateway.podLabels", le.key);
    podLabels = {};
    for (const p of lm?.items ?? []) {
      const k = p.key as Node;
      const v = asString(ctx, p.value as Node | null, "spec.gateway.podLabels values", k);
      if (!isScalar(k) || typeof k.value !== "string") ctx.err(k, "spec.gateway.podLabels keys must be strings");
      else if (v !== null && !LABEL_VALUE.test(v)) ctx.err(p.value as Node, `spec.gateway.podLabels.${k.value}: "${v}" is not a Kubernetes label value`);
      else if (v !== null) podLabels[k.value] = v;
    }
    if (lm && lm.items.length === 0) ctx.err(lm, "spec.gateway.podLabels must name at least one label (it selects the gateway pods)");
  }
  const pe = f.get("metricsPort");
  const metricsPort = pe ? integer(ctx, pe.value, "spec.gateway.metricsPort", 1, 65535) : DEFAULT_METRICS_PORT;
  return metricsPort === null ? null : { namespace, podLabels, metricsPort };
}

interface Draft {
  readonly node: YAMLMap;
  readonly name: string | null;
  readonly address: { text: string; family: 4 | 6; value: bigint; node: Node } | null;
  readonly endpoint: MeshEndpoint | null | undefined;
  readonly listenPort: number | null;
  readonly publicKey: { text: string; node: Node } | null;
  readonly keyCreated: { text: string; ms: number } | null;
  readonly privateKeyFile: string | null;
  readonly allowedIPs: Array<{ cidr: Cidr; node: Node }> | null;
  readonly keepalive: number | null;
}

function cluster(ctx: Ctx, item: Node, where: string): Draft | null {
  const map = asMap(ctx, item, where);
  if (!map) return null;
  const f = fields(ctx, map, where, CLUSTER_FIELDS);
  const nn = requireField(ctx, f, "name", where, map);
  let name = nn ? asString(ctx, nn, `${where}.name`) : null;
  if (name !== null && !DNS_LABEL.test(name)) {
    ctx.err(nn, `${where}.name "${name}" is invalid: a DNS label (lowercase letters, digits and "-", at most 63 characters)`);
    name = null;
  }
  const an = requireField(ctx, f, "address", where, map);
  const at = an ? asString(ctx, an, `${where}.address`) : null;
  let address: Draft["address"] = null;
  if (at !== null) {
    const ip = parseIp(at);
    if (!ip) ctx.err(an, `${where}.address "${at}" is not an IP address (the gateway's address in the mesh, without a prefix)`);
    else address = { text: at, family: ip.family, value: ip.value, node: an! };
  }
  const ee = f.get("endpoint");
  const ep = ee ? endpoint(ctx, ee.value, `${where}.endpoint`) : null;
  const pe = f.get("listenPort");
  const listenPort = pe ? integer(ctx, pe.value, `${where}.listenPort`, 1, 65535) : DEFAULT_LISTEN_PORT;
  const kn = requireField(ctx, f, "publicKey", where, map);
  const kt = kn ? asString(ctx, kn, `${where}.publicKey`) : null;
  let publicKey: Draft["publicKey"] = null;
  if (kt !== null) {
    // Never echo the value: whatever was pasted here might be a private key.
    if (!isWireGuardKey(kt)) ctx.err(kn, `${where}.publicKey is not a WireGuard key: it must be 32 bytes in base64 (44 characters ending in "="), as \`zt mesh keygen\` prints; got ${kt.length} characters`);
    else publicKey = { text: kt, node: kn! };
  }
  const cn = requireField(ctx, f, "keyCreated", where, map);
  const ct = cn ? asString(ctx, cn, `${where}.keyCreated`) : null;
  let keyCreated: Draft["keyCreated"] = null;
  if (ct !== null) {
    const ms = Date.parse(ct);
    if (!KEY_CREATED.test(ct) || Number.isNaN(ms)) ctx.err(cn, `${where}.keyCreated "${ct}" is not a date (YYYY-MM-DD or an RFC 3339 timestamp): when the key pair was made, for the key-age metric`);
    else keyCreated = { text: ct, ms };
  }
  const fn = requireField(ctx, f, "privateKeyFile", where, map);
  const ft = fn ? asString(ctx, fn, `${where}.privateKeyFile`) : null;
  if (ft !== null && !ft.startsWith("/")) ctx.err(fn, `${where}.privateKeyFile must be an absolute path (the file a KMS-backed Secret or CSI volume mounts in the gateway pod)`);
  const ie = f.get("allowedIPs");
  let allowedIPs: Draft["allowedIPs"] = [];
  if (ie) {
    const seq = asSeq(ctx, ie.value, `${where}.allowedIPs`, ie.key);
    if (!seq) allowedIPs = null;
    seq?.items.forEach((n, j) => {
      const c = cidr(ctx, n as Node, `${where}.allowedIPs[${j}]`);
      if (c && allowedIPs) allowedIPs.push({ cidr: c, node: n as Node });
      else allowedIPs = null;
    });
  }
  const ke = f.get("persistentKeepalive");
  const keepalive = ke ? integer(ctx, ke.value, `${where}.persistentKeepalive`, 0, 65535) : DEFAULT_KEEPALIVE;
  return {
    node: map,
    name,
    address,
    endpoint: ee ? ep ?? undefined : null,
    listenPort,
    publicKey,
    keyCreated,
    privateKeyFile: ft !== null && ft.startsWith("/") ? ft : null,
    allowedIPs,
    keepalive,
  };
}

function where(ctx: Ctx, node: Node): string {
  const a: SourceRef = ctx.at(node);
  return `${a.line}:${a.col}`;
}

/** The rules between clusters: unique names, keys and addresses; addresses in the mesh; no overlapping routes. */
function crossChecks(ctx: Ctx, drafts: readonly Draft[], mesh: Cidr | null, meshNode: Node | null): void {
  const names = new Map<string, Draft>();
  const keys = new Map<string, Draft>();
  const addrs = new Map<string, Draft>();
  const routes: Array<{ cidr: Cidr; node: Node; owner: string }> = [];
  for (const d of drafts) {
    const label = d.name ?? "(unnamed)";
    if (d.name !== null) {
      const prev = names.get(d.name);
      if (prev) ctx.err(d.node, `duplicate cluster name "${d.name}" (also at ${where(ctx, prev.node)})`);
      else names.set(d.name, d);
    }
    if (d.publicKey) {
      const prev = keys.get(d.publicKey.text);
      if (prev) ctx.err(d.publicKey.node, `duplicate publicKey: cluster ${label} has the same key as cluster ${prev.name ?? "(unnamed)"} (${where(ctx, prev.publicKey!.node)}); every gateway needs its own key pair`);
      else keys.set(d.publicKey.text, d);
    }
    if (d.address) {
      const a = d.address;
      const key = `${a.family}|${a.value}`;
      const prev = addrs.get(key);
      if (prev) ctx.err(a.node, `duplicate address ${a.text}: also the address of cluster ${prev.name ?? "(unnamed)"} (${where(ctx, prev.address!.node)})`);
      else addrs.set(key, d);
      if (mesh && !contains(mesh, a.family, a.value)) ctx.err(a.node, `address ${a.text} of cluster ${label} is outside the mesh CIDR ${mesh.text}`);
      else if (mesh && isReservedHost(mesh, a.value)) ctx.err(a.node, `address ${a.text} is the network or broadcast address of the mesh CIDR ${mesh.text}`);
      if (a.family === 4 || a.family === 6) routes.push({ cidr: hostCidr(a.family, a.value), node: a.node, owner: label });
    }
  }
  // Each address is routed to exactly one peer (WireGuard's cryptokey routing): the gateways'
  // own addresses (implied) and every allowedIPs block must be pairwise disjoint.
  for (const d of drafts) {
    const label = d.name ?? "(unnamed)";
    for (const ip of d.allowedIPs ?? []) {
      if (mesh && overlaps(ip.cidr, mesh)) {
        ctx.err(ip.node, `allowedIPs ${ip.cidr.text} of cluster ${label} overlaps the mesh CIDR ${mesh.text}${meshNode ? ` (${where(ctx, meshNode)})` : ""}: the gateways' mesh addresses are routed already; list only the networks behind the gateway`);
        continue;
      }
      const clash = routes.find((r) => overlaps(r.cidr, ip.cidr));
      if (clash) {
        const whose = clash.owner === label ? "another block of the same cluster" : `cluster ${clash.owner}`;
        ctx.err(ip.node, `allowedIPs ${ip.cidr.text} of cluster ${label} overlaps ${clash.cidr.text} of ${whose} (${where(ctx, clash.node)}): WireGuard routes each address to one peer only`);
        continue;
      }
      routes.push({ cidr: ip.cidr, node: ip.node, owner: label });
    }
  }
  // A pair of gateways needs at least one endpoint to meet: without any, neither can start a handshake.
  const silent = drafts.filter((d) => d.endpoint === null);
  if (silent.length >= 2) {
    for (const d of silent.slice(1)) ctx.err(d.node, `cluster ${d.name ?? "(unnamed)"} has no endpoint, nor has cluster ${silent[0]!.name ?? "(unnamed)"} (${where(ctx, silent[0]!.node)}): two gateways without endpoints can never reach each other`);
  }
}

function meshDocument(ctx: Ctx, root: Node): WireGuardMesh | null {
  const map = asMap(ctx, root, "a WireGuardMesh document");
  if (!map) return null;
  // The kind is WireGuardMesh: that is how the document was routed here.
  const { name, spec } = documentHeader(ctx, map, "the WireGuardMesh document");
  if (!spec) return null;
  const sf = fields(ctx, spec, "spec", ["meshCIDR", "gateway", "clusters"]);
  const mc = requireField(ctx, sf, "meshCIDR", "spec", spec);
  const meshCIDR = mc ? cidr(ctx, mc, "spec.meshCIDR") : null;
  const gw = gateway(ctx, sf.get("gateway")?.value ?? (sf.has("gateway") ? null : undefined));
  const cn = requireField(ctx, sf, "clusters", "spec", spec);
  const seq = cn ? asSeq(ctx, cn, "spec.clusters") : null;
  const drafts: Draft[] = [];
  seq?.items.forEach((item, i) => {
    const d = cluster(ctx, item as Node, `spec.clusters[${i}]`);
    if (d) drafts.push(d);
  });
  if (seq && seq.items.length < 2) ctx.err(seq, `spec.clusters must list at least two clusters (a mesh joins gateways), got ${seq.items.length}`);
  crossChecks(ctx, drafts, meshCIDR, mc);
  if (ctx.errors.length > 0 || name === null || meshCIDR === null || gw === null) return null;
  const clusters: MeshCluster[] = drafts.map((d) => ({
    name: d.name!,
    address: d.address!.text,
    addressFamily: d.address!.family,
    endpoint: d.endpoint ?? null,
    listenPort: d.listenPort!,
    publicKey: d.publicKey!.text,
    keyCreated: d.keyCreated!.text,
    keyCreatedMs: d.keyCreated!.ms,
    privateKeyFile: d.privateKeyFile!,
    allowedIPs: d.allowedIPs!.map((a) => a.cidr),
    persistentKeepalive: d.keepalive!,
    at: ctx.at(d.node),
  }));
  return { name, meshCIDR, gateway: gw, clusters, source: ctx.file };
}

/** The publicKey value nodes of the document (valid or not): the only places key-shaped text may sit. */
function publicKeyNodes(root: Node): Node[] {
  const out: Node[] = [];
  if (!isMap(root)) return out;
  const spec = root.get("spec", true);
  const clusters = isMap(spec) ? spec.get("clusters", true) : null;
  if (!isSeq(clusters)) return out;
  for (const c of clusters.items) {
    const k = isMap(c) ? c.get("publicKey", true) : null;
    if (isScalar(k) && typeof k.value === "string") out.push(k);
  }
  return out;
}

export function parseMesh(doc: CompanionDocument): MeshParse {
  const ctx = doc.ctx;
  ctx.errors.length = 0;
  const secrets = secretFindings(doc, publicKeyNodes(doc.root));
  const mesh = meshDocument(ctx, doc.root);
  // A secret field is reported once, as a secret, not also as an unknown field.
  const secretAt = new Set(secrets.map((d) => `${d.line}:${d.col}`));
  const errors = [...secrets, ...ctx.errors.filter((d) => !(secretAt.has(`${d.line}:${d.col}`) && d.message.startsWith("unknown field")))];
  if (errors.length > 0 || mesh === null) return { ok: false, errors: sortDiagnostics(errors) };
  return { ok: true, mesh };
}

/** The companion validator `zt check` runs (compiler/companions.ts). */
export function validateMesh(doc: CompanionDocument): Diagnostic[] {
  const r = parseMesh(doc);
  return r.ok ? [] : r.errors;
}

export { MESH_KIND };
