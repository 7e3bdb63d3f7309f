// Least privilege from observed traffic (zt suggest): the smallest ServiceAccessPolicy that
// allows exactly the observed flows (source, destination, port): one rule per source, one
// target per destination, its ports as the fewest ranges of consecutive observed ports.
// Generalisation (a namespace's service accounts as one `*` source) only when asked, and said
// in a comment. The flows come from the audit trail (trail.ts); building the YAML is pure.
import type { Sql } from "postgres";
import { Document, isMap, isSeq, type YAMLMap, type YAMLSeq } from "yaml";
import type { PortRange } from "../../compiler/model.js";
import { parseSpiffeId, workloadParts } from "../../compiler/spiffe.js";
import { NoRecordsError, readTrail, type SeenFlow, type TrailWindow } from "./trail.js";

export type ObservedFlow = SeenFlow;

export type SuggestMode = "denied" | "all";
export type Generalize = "none" | "namespace";

export interface SuggestOptions {
  name: string;
  generalize: Generalize;
  /** What was read, for the header comment. */
  window?: TrailWindow;
  mode?: SuggestMode;
}

export interface Suggestion {
  yaml: string;
  flows: number;
  rules: number;
  /** Would-be denials an explicit DENY rule made: an ALLOW beside it would not let them through. */
  denied_by_rule: ObservedFlow[];
  generalized: Array<{ pattern: string; service_accounts: string[] }>;
}

export class TooManyFlowsError extends Error {
  constructor(limit: number) {
    super(`more than ${limit} distinct flows in the window: narrow it (--since/--until, --destination)`);
    this.name = "TooManyFlowsError";
  }
}

export const MAX_FLOWS = 100_000;

// metadata.name of the policy language (compiler/parse.ts).
const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The options the CLI and the API share, checked; errors name the parameter as the caller spells it. */
export function parseSuggestOptions(
  raw: { name?: string | undefined; generalize?: string | undefined; mode?: string | undefined },
  names: { name: string; generalize: string; mode: string },
): { ok: true; value: { name: string; generalize: Generalize; mode: SuggestMode } } | { ok: false; path: string; message: string } {
  const name = raw.name ?? "suggested";
  if (!NAME_RE.test(name)) return { ok: false, path: names.name, message: `"${name}" is not a policy name: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit` };
  const generalize = raw.generalize ?? "none";
  if (generalize !== "none" && generalize !== "namespace") return { ok: false, path: names.generalize, message: `must be "none" or "namespace", got "${generalize}"` };
  const mode = raw.mode ?? "denied";
  if (mode !== "denied" && mode !== "all") return { ok: false, path: names.mode, message: `must be "denied" or "all", got "${mode}"` };
  return { ok: true, value: { name, generalize, mode } };
}

/** Distinct observed service flows in the window, with counts; and those an explicit DENY rule refused. */
export async function observedFlows(sql: Sql, w: TrailWindow, mode: SuggestMode, maxFlows = MAX_FLOWS): Promise<{ flows: ObservedFlow[]; deniedByRule: ObservedFlow[]; records: number }> {
  const flows = new Map<string, ObservedFlow>();
  const deniedByRule = new Map<string, ObservedFlow>();
  let records = 0;
  for await (const chunk of readTrail(sql, { ...w, observedDenialsOnly: mode === "denied" })) {
    records += chunk.records;
    for (const g of chunk.groups) {
      if (g.source === null || g.destination === null || g.port === null) continue;
      // A request the engine refused as malformed names nothing a policy could allow.
      if (g.reason === "invalid_request" || !parseSpiffeId(g.source).ok || !parseSpiffeId(g.destination).ok) continue;
      const into = g.reason === "denied_by_rule" ? deniedByRule : flows;
      const key = `${g.source}\n${g.destination}\n${g.port}`;
      const f = into.get(key);
      if (f) {
        f.count += g.count;
        if (g.first < f.first_seen) f.first_seen = g.first;
        if (g.last > f.last_seen) f.last_seen = g.last;
      } else {
        if (into.size >= maxFlows) throw new TooManyFlowsError(maxFlows);
        into.set(key, { source: g.source, destination: g.destination, port: g.port, count: g.count, first_seen: g.first, last_seen: g.last });
      }
    }
  }
  if (records === 0) throw new NoRecordsError(w);
  return { flows: [...flows.values()], deniedByRule: [...deniedByRule.values()], records };
}

/** Sorted distinct ports as the fewest inclusive ranges. */
export function portRangesOf(ports: Iterable<number>): PortRange[] {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const out: Array<{ lo: number; hi: number }> = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last.hi + 1 === p) last.hi = p;
    else out.push({ lo: p, hi: p });
  }
  return out;
}

function portSpec(r: PortRange): number | string {
  return r.lo === r.hi ? r.lo : `${r.lo}-${r.hi}`;
}

/** The source a flow's rule is written for: itself, or its namespace when generalising. */
function sourcePattern(source: string, generalize: Generalize): { pattern: string; sa: string | null } {
  if (generalize !== "namespace") return { pattern: source, sa: null };
  const id = parseSpiffeId(source);
  const parts = id.ok ? workloadParts(id.value) : null;
  if (!id.ok || !parts) return { pattern: source, sa: null };
  return { pattern: `spiffe://${id.value.trustDomain}/${parts.cluster}/${parts.namespace}/*`, sa: parts.serviceAccount };
}

export function buildSuggestion(flows: readonly ObservedFlow[], deniedByRule: readonly ObservedFlow[], opts: SuggestOptions): Suggestion {
  // source pattern -> destination -> ports, and the flows behind each (for the comments).
  const bySource = new Map<string, { sas: Set<string>; dests: Map<string, { ports: Set<number>; count: number; first: string; last: string }> }>();
  for (const f of flows) {
    const src = sourcePattern(f.source, opts.generalize);
    let s = bySource.get(src.pattern);
    if (!s) bySource.set(src.pattern, (s = { sas: new Set(), dests: new Map() }));
    if (src.sa !== null) s.sas.add(src.sa);
    let d = s.dests.get(f.destination);
    if (!d) s.dests.set(f.destination, (d = { ports: new Set(), count: 0, first: f.first_seen, last: f.last_seen }));
    d.ports.add(f.port);
    d.count += f.count;
    if (f.first_seen < d.first) d.first = f.first_seen;
    if (f.last_seen > d.last) d.last = f.last_seen;
  }
  const sources = [...bySource.keys()].sort();
  const rules = sources.map((src) => {
    const s = bySource.get(src)!;
    const dests = [...s.dests.keys()].sort();
    return { from: { spiffe: src }, to: dests.map((d) => ({ spiffe: d, ports: portRangesOf(s.dests.get(d)!.ports).map(portSpec) })) };
  });
  const doc = new Document({ apiVersion: "zt.hanzo.ai/v1", kind: "ServiceAccessPolicy", metadata: { name: opts.name }, spec: { rules, defaultAction: "DENY" } });
  const header = [
    ` Suggested by zt suggest: allows exactly the ${flows.length} observed flow${flows.length === 1 ? "" : "s"} (source, destination, port)${opts.generalize === "namespace" ? ", sources generalised to their namespace where marked" : ""}.`,
  ];
  if (opts.window) {
    header.push(` Window: ${opts.window.since.toISOString()} .. ${opts.window.until.toISOString()}${opts.window.destination ? `, destination ${opts.window.destination}` : ""}; ${opts.mode === "all" ? "all service traffic" : "observe mode's would-be denials"}.`);
  }
  if (flows.length === 0) header.push(" Nothing was observed that needs a rule.");
  if (deniedByRule.length > 0) {
    header.push(` Not included: ${deniedByRule.length} flow${deniedByRule.length === 1 ? "" : "s"} an explicit DENY rule refused (DENY overrides ALLOW; change that rule instead):`);
    for (const f of deniedByRule.slice(0, 20)) header.push(`   ${f.source} -> ${f.destination}:${f.port} (${f.count})`);
    if (deniedByRule.length > 20) header.push(`   … and ${deniedByRule.length - 20} more`);
  }
  doc.commentBefore = header.join("\n");
  const generalized: Suggestion["generalized"] = [];
  const rulesNode = (doc.getIn(["spec", "rules"], true) as YAMLSeq | undefined) ?? null;
  if (rulesNode && isSeq(rulesNode)) {
    rulesNode.items.forEach((item, i) => {
      const src = sources[i]!;
      const s = bySource.get(src)!;
      const records = [...s.dests.values()].reduce((n, d) => n + d.count, 0);
      const lines = [` ${records} decision${records === 1 ? "" : "s"} observed from ${src}`];
      if (s.sas.size > 0) {
        const sas = [...s.sas].sort();
        generalized.push({ pattern: src, service_accounts: sas });
        lines.push(` generalised (--generalize namespace): stands for the observed service accounts ${sas.join(", ")}; it also allows any other service account of that namespace`);
      }
      (item as YAMLMap).commentBefore = lines.join("\n");
      const to = (item as YAMLMap).get("to", true);
      if (isSeq(to)) {
        to.items.forEach((t, j) => {
          const d = s.dests.get([...s.dests.keys()].sort()[j]!)!;
          if (isMap(t)) t.commentBefore = ` ${d.count} decision${d.count === 1 ? "" : "s"}, ${d.first} .. ${d.last}`;
        });
      }
    });
  }
  return { yaml: doc.toString({ lineWidth: 0 }), flows: flows.length, rules: rules.length, denied_by_rule: [...deniedByRule], generalized };
}
