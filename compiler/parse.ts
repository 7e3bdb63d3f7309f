// YAML (or JSON) policy text -> validated model. Every problem is collected with its
// position; nothing throws. The accepted shape is documented in docs/policy-language.md.
import { yamlNestingError } from "./yaml-nesting.js";
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Node, type YAMLMap, type YAMLSeq } from "yaml";
import { type Diagnostic, sortDiagnostics } from "./diagnostics.js";
import {
  type AgentScopeEntry,
  API_VERSION,
  type OperatorAccessPolicy,
  type OperatorRule,
  type OperatorTarget,
  type Policy,
  type PortRange,
  type RolloutEntry,
  type RuleAction,
  type ServiceAccessPolicy,
  type ServiceRule,
  type ServiceTarget,
  type SourceRef,
} from "./model.js";
import { parseSpiffePattern, type SpiffePattern } from "./spiffe.js";
import { COMPANION_KINDS } from "./companion-kinds.js";

/**
 * A document of another kind that lives beside policies (tests, mesh, access routes): the
 * policy loader sets it aside; `zt check` validates it with its kind's validator (companions.ts).
 */
export interface CompanionDocument {
  readonly kind: string;
  readonly file: string;
  readonly root: Node;
  /** Builds diagnostics at this document's line:col (its own Ctx). */
  readonly ctx: Ctx;
  /** The file's text and this document's span in it, comments included (what the node tree leaves out). */
  readonly text: string;
  readonly span: readonly [number, number];
}

export type ParseOutcome = { ok: true; policies: Policy[]; companions: CompanionDocument[] } | { ok: false; errors: Diagnostic[] };

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const RULE_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,126}[A-Za-z0-9])?$/;
const TOKEN_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export class Ctx {
  readonly errors: Diagnostic[] = [];
  constructor(
    readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  at(node: Node | null | undefined, fallback?: Node | null): SourceRef {
    const n = node ?? fallback;
    const offset = n?.range?.[0] ?? 0;
    const p = this.lines.linePos(offset);
    return { file: this.file, line: p.line, col: p.col };
  }

  /** The position of a character offset in the file (for findings outside the node tree, e.g. in comments). */
  atOffset(offset: number): SourceRef {
    const p = this.lines.linePos(offset);
    return { file: this.file, line: p.line, col: p.col };
  }

  err(node: Node | null | undefined, message: string, fallback?: Node | null): void {
    const at = this.at(node, fallback);
    this.errors.push({ file: at.file, line: at.line, col: at.col, message });
  }
}

export function typeName(node: Node | null | undefined): string {
  if (node == null) return "null";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return "null";
    return typeof v === "string" ? "a string" : typeof v === "number" ? "a number" : typeof v === "boolean" ? "a boolean" : typeof v;
  }
  return "an unknown node";
}

/** Reads a mapping's entries, reporting unknown and duplicate keys; returns key -> value node. */
export function fields(ctx: Ctx, map: YAMLMap, where: string, allowed: readonly string[]): Map<string, { key: Node; value: Node | null }> {
  const out = new Map<string, { key: Node; value: Node | null }>();
  for (const pair of map.items) {
    const keyNode = pair.key as Node;
    if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
      ctx.err(keyNode, `${where}: keys must be strings`, map);
      continue;
    }
    const key = keyNode.value;
    if (!allowed.includes(key)) {
      ctx.err(keyNode, `unknown field "${key}" in ${where} (allowed: ${allowed.join(", ")})`);
      continue;
    }
    if (out.has(key)) {
      ctx.err(keyNode, `duplicate field "${key}" in ${where}`);
      continue;
    }
    out.set(key, { key: keyNode, value: (pair.value as Node | null) ?? null });
  }
  return out;
}

export function requireField(ctx: Ctx, f: Map<string, { key: Node; value: Node | null }>, name: string, where: string, parent: Node): Node | null {
  const e = f.get(name);
  if (!e) {
    ctx.err(parent, `${where}: missing required field "${name}"`);
    return null;
  }
  if (e.value == null || (isScalar(e.value) && e.value.value === null)) {
    ctx.err(e.value ?? e.key, `${where}: "${name}" must not be empty`, e.key);
    return null;
  }
  return e.value;
}

export function asMap(ctx: Ctx, node: Node | null, what: string, fallback?: Node | null): YAMLMap | null {
  if (node && isMap(node)) return node;
  ctx.err(node, `${what} must be a mapping, got ${typeName(node)}`, fallback);
  return null;
}

export function asSeq(ctx: Ctx, node: Node | null, what: string, fallback?: Node | null): YAMLSeq | null {
  if (node && isSeq(node)) return node;
  ctx.err(node, `${what} must be a list, got ${typeName(node)}`, fallback);
  return null;
}

export function asString(ctx: Ctx, node: Node | null, what: string, fallback?: Node | null): string | null {
  if (node && isScalar(node) && typeof node.value === "string") return node.value;
  ctx.err(node, `${what} must be a string, got ${typeName(node)}`, fallback);
  return null;
}

export function asBool(ctx: Ctx, node: Node | null, what: string): boolean | null {
  if (node && isScalar(node) && typeof node.value === "boolean") return node.value;
  ctx.err(node, `${what} must be true or false, got ${typeName(node)}`);
  return null;
}

function pattern(ctx: Ctx, node: Node | null, what: string): SpiffePattern | null {
  const text = asString(ctx, node, what);
  if (text === null) return null;
  const p = parseSpiffePattern(text);
  if (!p.ok) {
    ctx.err(node, `${what}: invalid SPIFFE ID "${text}": ${p.error}`);
    return null;
  }
  return p.value;
}

function spiffeHolder(ctx: Ctx, node: Node | null, where: string): SpiffePattern | null {
  const map = asMap(ctx, node, where);
  if (!map) return null;
  const f = fields(ctx, map, where, ["spiffe"]);
  const v = requireField(ctx, f, "spiffe", where, map);
  return v ? pattern(ctx, v, `${where}.spiffe`) : null;
}

const ALL_PORTS: readonly PortRange[] = [{ lo: 0, hi: 65535 }];

export function port(ctx: Ctx, node: Node, what: string): PortRange | null {
  if (isScalar(node) && typeof node.value === "number") {
    const n = node.value;
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      ctx.err(node, `${what}: port ${n} is out of range (1-65535)`);
      return null;
    }
    return { lo: n, hi: n };
  }
  if (isScalar(node) && typeof node.value === "string") {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(node.value);
    if (!m) {
      ctx.err(node, `${what}: "${node.value}" is not a port: use an integer or a "lo-hi" range`);
      return null;
    }
    const lo = Number(m[1]);
    const hi = Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > hi) {
      ctx.err(node, `${what}: range "${node.value}" is invalid (need 1 <= lo <= hi <= 65535)`);
      return null;
    }
    return { lo, hi };
  }
  ctx.err(node, `${what}: a port must be an integer or a "lo-hi" range, got ${typeName(node)}`);
  return null;
}

export function ports(ctx: Ctx, node: Node | null | undefined, what: string, fallback: Node): readonly PortRange[] | null {
  if (node === undefined) return ALL_PORTS;
  const seq = asSeq(ctx, node, what, fallback);
  if (!seq) return null;
  if (seq.items.length === 0) {
    ctx.err(seq, `${what} is empty: omit "ports" to allow every port`);
    return null;
  }
  const out: PortRange[] = [];
  let ok = true;
  seq.items.forEach((item, i) => {
    const r = port(ctx, item as Node, `${what}[${i}]`);
    if (r) out.push(r);
    else ok = false;
  });
  return ok ? out : null;
}

function ruleName(ctx: Ctx, f: Map<string, { key: Node; value: Node | null }>, where: string): string | null | undefined {
  const e = f.get("name");
  if (!e) return null;
  const s = asString(ctx, e.value, `${where}.name`, e.key);
  if (s === null) return undefined;
  if (!RULE_NAME_RE.test(s)) {
    ctx.err(e.value, `${where}.name "${s}" is invalid: letters, digits, "-", "_" and "." only, starting and ending with a letter or digit`);
    return undefined;
  }
  return s;
}

/** Assigns `<policy>/<name>` or `<policy>/rule-N`, reporting collisions. */
function assignIds(ctx: Ctx, policy: string, names: Array<{ name: string | null; node: Node }>): string[] {
  const ids = names.map((n, i) => `${policy}/${n.name ?? `rule-${i + 1}`}`);
  const seen = new Map<string, number>();
  ids.forEach((id, i) => {
    const prev = seen.get(id);
    if (prev !== undefined) {
      ctx.err(names[i]!.node, `duplicate rule name "${id}" (also rule ${prev + 1} of this policy)`);
    } else seen.set(id, i);
  });
  return ids;
}

function serviceSpec(ctx: Ctx, spec: YAMLMap, name: string, source: string): ServiceAccessPolicy | null {
  const f = fields(ctx, spec, "spec", ["rules", "defaultAction", "rollout", "agentScopes"]);
  const before = ctx.errors.length;
  const da = f.get("defaultAction");
  if (da) {
    const v = asString(ctx, da.value, "spec.defaultAction", da.key);
    if (v !== null && v !== "DENY") {
      ctx.err(da.value, `spec.defaultAction must be DENY (ZT is default-deny; to let traffic through while you tune a policy, use observe mode)`);
    }
  }
  const rulesNode = requireField(ctx, f, "rules", "spec", spec);
  const rulesSeq = rulesNode ? asSeq(ctx, rulesNode, "spec.rules") : null;
  const drafts: Array<{ name: string | null; node: Node; action: RuleAction; from: SpiffePattern | null; to: ServiceTarget[] | null }> = [];
  rulesSeq?.items.forEach((item, i) => {
    const where = `spec.rules[${i}]`;
    const map = asMap(ctx, item as Node, where);
    if (!map) return;
    const rf = fields(ctx, map, where, ["name", "action", "from", "to"]);
    const rn = ruleName(ctx, rf, where);
    let action: RuleAction = "ALLOW";
    const ae = rf.get("action");
    if (ae) {
      const a = asString(ctx, ae.value, `${where}.action`, ae.key);
      if (a === "ALLOW" || a === "DENY") action = a;
      else if (a !== null) ctx.err(ae.value, `${where}.action must be ALLOW or DENY, got "${a}"`);
    }
    const fromNode = requireField(ctx, rf, "from", where, map);
    const from = fromNode ? spiffeHolder(ctx, fromNode, `${where}.from`) : null;
    const toNode = requireField(ctx, rf, "to", where, map);
    let to: ServiceTarget[] | null = null;
    const toSeq = toNode ? asSeq(ctx, toNode, `${where}.to`) : null;
    if (toSeq) {
      if (toSeq.items.length === 0) ctx.err(toSeq, `${where}.to must list at least one destination`);
      to = [];
      toSeq.items.forEach((t, j) => {
        const tw = `${where}.to[${j}]`;
        const tm = asMap(ctx, t as Node, tw);
        if (!tm) return;
        const tf = fields(ctx, tm, tw, ["spiffe", "ports"]);
        const sv = requireField(ctx, tf, "spiffe", tw, tm);
        const sp = sv ? pattern(ctx, sv, `${tw}.spiffe`) : null;
        const pe = tf.get("ports");
        const pr = ports(ctx, pe ? pe.value : undefined, `${tw}.ports`, pe?.key ?? tm);
        if (sp && pr) to!.push({ spiffe: sp, ports: pr });
      });
    }
    drafts.push({ name: rn ?? null, node: map, action, from, to });
  });
  const rollout: RolloutEntry[] = [];
  const re = f.get("rollout");
  if (re) {
    const seq = asSeq(ctx, re.value, "spec.rollout", re.key);
    seq?.items.forEach((item, i) => {
      const where = `spec.rollout[${i}]`;
      const map = asMap(ctx, item as Node, where);
      if (!map) return;
      const rf = fields(ctx, map, where, ["destination", "mode"]);
      const dn = requireField(ctx, rf, "destination", where, map);
      const dest = dn ? pattern(ctx, dn, `${where}.destination`) : null;
      const mn = requireField(ctx, rf, "mode", where, map);
      const mode = mn ? asString(ctx, mn, `${where}.mode`) : null;
      if (mode !== null && mode !== "observe" && mode !== "enforce") ctx.err(mn, `${where}.mode must be observe or enforce, got "${mode}"`);
      if (dest && (mode === "observe" || mode === "enforce")) rollout.push({ destination: dest, mode, at: ctx.at(map) });
    });
  }
  const agentScopes: AgentScopeEntry[] = [];
  const ae = f.get("agentScopes");
  if (ae) {
    const seq = asSeq(ctx, ae.value, "spec.agentScopes", ae.key);
    seq?.items.forEach((item, i) => {
      const where = `spec.agentScopes[${i}]`;
      const map = asMap(ctx, item as Node, where);
      if (!map) return;
      const af = fields(ctx, map, where, ["destination", "scopes"]);
      const dn = requireField(ctx, af, "destination", where, map);
      const dest = dn ? pattern(ctx, dn, `${where}.destination`) : null;
      const se = af.get("scopes");
      if (!se) {
        ctx.err(map, `${where}: missing required field "scopes" (use [] to admit any valid agent token)`);
        return;
      }
      const sseq = asSeq(ctx, se.value, `${where}.scopes`, se.key);
      const scopes: string[] = [];
      sseq?.items.forEach((sc, k) => {
        const t = token(ctx, sc as Node, `${where}.scopes[${k}]`, false);
        if (t !== null) scopes.push(t);
      });
      if (dest && sseq) agentScopes.push({ destination: dest, scopes, at: ctx.at(map) });
    });
  }
  const ids = assignIds(ctx, name, drafts);
  if (ctx.errors.length > before) return null;
  const rules: ServiceRule[] = drafts.map((d, i) => ({
    id: ids[i]!,
    name: d.name,
    action: d.action,
    from: d.from!,
    to: d.to!,
    at: ctx.at(d.node),
  }));
  return { kind: "ServiceAccessPolicy", name, rules, defaultAction: "DENY", rollout, agentScopes, source };
}

/** A policy token (service, action, role): letters, digits, ".", "_", ":" and "-"; "*" when allowed. */
export function token(ctx: Ctx, node: Node | null, what: string, allowStar: boolean, fallback?: Node | null): string | null {
  const s = asString(ctx, node, what, fallback);
  if (s === null) return null;
  if (allowStar && s === "*") return s;
  if (!TOKEN_RE.test(s)) {
    ctx.err(node, `${what} "${s}" is invalid: letters, digits, ".", "_", ":" and "-" only${allowStar ? ', or "*"' : ""}`);
    return null;
  }
  return s;
}

function conditions(ctx: Ctx, node: Node | null, where: string): { requireMFA: boolean; requireIncident: boolean } | null {
  const out = { requireMFA: false, requireIncident: false };
  // The seed writes conditions as a list of one-key mappings; a plain mapping is accepted too.
  const maps: YAMLMap[] = [];
  if (node && isSeq(node)) {
    node.items.forEach((item, i) => {
      const m = asMap(ctx, item as Node, `${where}[${i}]`);
      if (m) maps.push(m);
    });
  } else if (node && isMap(node)) {
    maps.push(node);
  } else {
    ctx.err(node, `${where} must be a list or a mapping of conditions, got ${typeName(node)}`);
    return null;
  }
  const before = ctx.errors.length;
  const seen = new Set<string>();
  for (const m of maps) {
    const f = fields(ctx, m, where, ["requireMFA", "requireIncident"]);
    for (const [k, e] of f) {
      if (seen.has(k)) ctx.err(e.key, `condition "${k}" is given twice in ${where}`);
      seen.add(k);
      const b = asBool(ctx, e.value, `${where}.${k}`);
      if (b !== null) out[k as keyof typeof out] = b;
    }
  }
  return ctx.errors.length > before ? null : out;
}

function operatorSpec(ctx: Ctx, spec: YAMLMap, name: string, source: string): OperatorAccessPolicy | null {
  const f = fields(ctx, spec, "spec", ["rules"]);
  const before = ctx.errors.length;
  const rulesNode = requireField(ctx, f, "rules", "spec", spec);
  const rulesSeq = rulesNode ? asSeq(ctx, rulesNode, "spec.rules") : null;
  const drafts: Array<Omit<OperatorRule, "id" | "at"> & { node: Node }> = [];
  rulesSeq?.items.forEach((item, i) => {
    const where = `spec.rules[${i}]`;
    const map = asMap(ctx, item as Node, where);
    if (!map) return;
    const rf = fields(ctx, map, where, ["name", "role", "targets", "conditions"]);
    const rn = ruleName(ctx, rf, where);
    const roleNode = requireField(ctx, rf, "role", where, map);
    const role = roleNode ? token(ctx, roleNode, `${where}.role`, false) : null;
    const targetsNode = requireField(ctx, rf, "targets", where, map);
    const tseq = targetsNode ? asSeq(ctx, targetsNode, `${where}.targets`) : null;
    const targets: OperatorTarget[] = [];
    if (tseq && tseq.items.length === 0) ctx.err(tseq, `${where}.targets must list at least one target`);
    tseq?.items.forEach((t, j) => {
      const tw = `${where}.targets[${j}]`;
      const tm = asMap(ctx, t as Node, tw);
      if (!tm) return;
      const tf = fields(ctx, tm, tw, ["service", "actions"]);
      const sn = requireField(ctx, tf, "service", tw, tm);
      const service = sn ? token(ctx, sn, `${tw}.service`, true) : null;
      const an = requireField(ctx, tf, "actions", tw, tm);
      const aseq = an ? asSeq(ctx, an, `${tw}.actions`) : null;
      const actions: string[] = [];
      if (aseq && aseq.items.length === 0) ctx.err(aseq, `${tw}.actions must list at least one action`);
      aseq?.items.forEach((a, k) => {
        const s = token(ctx, a as Node, `${tw}.actions[${k}]`, true);
        if (s !== null) actions.push(s);
      });
      if (service !== null) targets.push({ service, actions });
    });
    const ce = rf.get("conditions");
    const conds = ce ? conditions(ctx, ce.value, `${where}.conditions`) : { requireMFA: false, requireIncident: false };
    drafts.push({ name: rn ?? null, role: role ?? "", targets, conditions: conds ?? { requireMFA: false, requireIncident: false }, node: map });
  });
  const ids = assignIds(ctx, name, drafts);
  if (ctx.errors.length > before) return null;
  const rules: OperatorRule[] = drafts.map((d, i) => ({
    id: ids[i]!,
    name: d.name,
    role: d.role,
    targets: d.targets,
    conditions: d.conditions,
    at: ctx.at(d.node),
  }));
  return { kind: "OperatorAccessPolicy", name, rules, source };
}

/**
 * The header every document of the language shares (policies and companion kinds):
 * apiVersion, kind, metadata (name, labels, annotations) and spec. Reports every problem; `name`
 * is null when it is missing or invalid, `spec` when it is not a mapping. Which kinds are
 * accepted is the caller's to check (`kind`, with its node).
 */
export function documentHeader(ctx: Ctx, map: YAMLMap, what: string): { kind: { text: string; node: Node } | null; name: string | null; spec: YAMLMap | null } {
  const f = fields(ctx, map, what, ["apiVersion", "kind", "metadata", "spec"]);
  const av = requireField(ctx, f, "apiVersion", what, map);
  if (av) {
    const s = asString(ctx, av, "apiVersion");
    if (s !== null && s !== API_VERSION) ctx.err(av, `apiVersion must be "${API_VERSION}", got "${s}"`);
  }
  const kn = requireField(ctx, f, "kind", what, map);
  const kindText = kn ? asString(ctx, kn, "kind") : null;
  let name: string | null = null;
  const mn = requireField(ctx, f, "metadata", what, map);
  const meta = mn ? asMap(ctx, mn, "metadata") : null;
  if (meta) {
    const mf = fields(ctx, meta, "metadata", ["name", "labels", "annotations"]);
    const nn = requireField(ctx, mf, "name", "metadata", meta);
    name = nn ? asString(ctx, nn, "metadata.name") : null;
    if (name !== null && !NAME_RE.test(name)) {
      ctx.err(nn, `metadata.name "${name}" is invalid: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters`);
      name = null;
    }
    for (const key of ["labels", "annotations"] as const) {
      const e = mf.get(key);
      if (!e) continue;
      const m = asMap(ctx, e.value, `metadata.${key}`, e.key);
      m?.items.forEach((p) => {
        if (!isScalar(p.value) || typeof (p.value as { value: unknown }).value !== "string") ctx.err(p.value as Node, `metadata.${key} values must be strings`, p.key as Node);
      });
    }
  }
  const sn = requireField(ctx, f, "spec", what, map);
  const spec = sn ? asMap(ctx, sn, "spec") : null;
  return { kind: kn && kindText !== null ? { text: kindText, node: kn } : null, name, spec };
}

function policyDocument(ctx: Ctx, root: Node | null): Policy | null {
  const map = asMap(ctx, root, "a policy document");
  if (!map) return null;
  const header = documentHeader(ctx, map, "the policy document");
  const { name, spec } = header;
  const kind = header.kind?.text ?? null;
  if (kind !== null && kind !== "ServiceAccessPolicy" && kind !== "OperatorAccessPolicy") {
    ctx.err(header.kind!.node, `kind must be ${kindList()}, got "${kind}"`);
  }
  if (!spec) return null;
  // Validate the spec even when the name is bad, so every error is reported at once.
  const policyName = name ?? "invalid-name";
  let policy: Policy | null = null;
  if (kind === "ServiceAccessPolicy") policy = serviceSpec(ctx, spec, policyName, ctx.file);
  else if (kind === "OperatorAccessPolicy") policy = operatorSpec(ctx, spec, policyName, ctx.file);
  return name === null ? null : policy;
}

function kindList(): string {
  const kinds = ["ServiceAccessPolicy", "OperatorAccessPolicy", ...COMPANION_KINDS];
  return kinds.slice(0, -1).join(", ") + " or " + kinds[kinds.length - 1];
}

/** The document's kind when it is a companion kind (a mapping whose `kind` is one), else null. */
function companionKind(root: Node): string | null {
  if (!isMap(root)) return null;
  const k = root.get("kind", true);
  return isScalar(k) && typeof k.value === "string" && (COMPANION_KINDS as readonly string[]).includes(k.value) ? k.value : null;
}

/** Parses one file's text: YAML or JSON, one or more documents (`---`). */
export function parsePolicyText(text: string, file: string): ParseOutcome {
  const tooDeep = yamlNestingError(text);
  if (tooDeep !== null) return { ok: false, errors: [{ file, ...tooDeep }] };
  const lines = new LineCounter();
  const ctx = new Ctx(file, lines);
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, strict: true });
  const policies: Policy[] = [];
  const companions: CompanionDocument[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  let spanStart = 0;
  for (const [i, doc] of list.entries()) {
    const spanEnd = i === list.length - 1 ? text.length : doc.range[2];
    const span = [spanStart, spanEnd] as const;
    spanStart = spanEnd;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const p = lines.linePos(e.pos[0]);
        ctx.errors.push({ file, line: p.line, col: p.col, message: `YAML syntax: ${e.message.split("\n")[0]}` });
      }
      continue;
    }
    if (doc.contents === null) continue;
    const root = doc.contents as Node;
    const kind = companionKind(root);
    if (kind !== null) companions.push({ kind, file, root, ctx: new Ctx(file, lines), text, span });
    else {
      const p = policyDocument(ctx, root);
      if (p) policies.push(p);
    }
  }
  if (ctx.errors.length > 0) return { ok: false, errors: sortDiagnostics(ctx.errors) };
  if (policies.length === 0 && companions.length === 0) return { ok: false, errors: [{ file, line: 1, col: 1, message: "no policy document found" }] };
  return { ok: true, policies, companions };
}
