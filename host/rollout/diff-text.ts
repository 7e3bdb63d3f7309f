// zt diff's text output: each request class with its pattern, exceptions and witness, the
// two directions apart. The JSON form (--format json) is the PolicyDiff itself.
import type { NameSet, PolicyDiff, RegionDesc } from "../../compiler/diff/index.js";
import type { PortRange } from "../../compiler/model.js";

/** Exceptions listed in text before "(+N more)"; JSON lists all. */
const MAX_EXCEPT = 5;

export function region(d: RegionDesc): string {
  if (d.except.length === 0) return d.pattern;
  const shown = d.except.slice(0, MAX_EXCEPT).join(", ");
  const more = d.except.length > MAX_EXCEPT ? `, +${d.except.length - MAX_EXCEPT} more` : "";
  return `${d.pattern} except ${shown}${more}`;
}

export function portRanges(ps: readonly PortRange[]): string {
  if (ps.length === 1 && ps[0]!.lo === 0 && ps[0]!.hi === 65535) return "any";
  return ps.map((p) => (p.lo === p.hi ? String(p.lo) : `${p.lo}-${p.hi}`)).join(", ");
}

export function names(n: NameSet): string {
  if ("in" in n) return n.in.length === 1 ? n.in[0]! : `one of ${n.in.join(", ")}`;
  return n.not_in.length === 0 ? "any" : `any but ${n.not_in.join(", ")}`;
}

export const flag = (v: boolean | null): string => (v === null ? "either" : v ? "yes" : "no");

function section<T>(out: string[], title: string, list: readonly T[], lines: (t: T) => string[]): void {
  if (list.length === 0) return;
  out.push("", `${title} (${list.length} class${list.length === 1 ? "" : "es"})`);
  for (const item of list) {
    const [first, ...rest] = lines(item);
    out.push(`  - ${first}`, ...rest.map((l) => `    ${l}`));
  }
}

export function formatDiff(diff: PolicyDiff, oldLabel: string, newLabel: string): string {
  const out: string[] = [`zt diff ${oldLabel} -> ${newLabel}`];
  if (diff.identical) return out.concat("no request is decided differently; no enforcement setting changes").join("\n") + "\n";
  for (const [dir, title] of [["allow_to_deny", "ALLOW -> DENY"], ["deny_to_allow", "DENY -> ALLOW"]] as const) {
    section(out, `service requests, ${title}`, diff.service[dir], (c) => [
      `source:      ${region(c.source)}`,
      `destination: ${region(c.destination)}`,
      `ports:       ${portRanges(c.ports)}`,
      `e.g.         ${c.witness.source} -> ${c.witness.destination}:${c.witness.port}`,
    ]);
  }
  for (const [dir, title] of [["allow_to_deny", "ALLOW -> DENY"], ["deny_to_allow", "DENY -> ALLOW"]] as const) {
    section(out, `operator requests, ${title}`, diff.operator[dir], (c) => [
      `roles:   any of ${c.roles.any_of.join(", ")}${c.roles.none_of.length > 0 ? `, none of ${c.roles.none_of.join(", ")}` : ""}`,
      `service: ${names(c.service)}; action: ${names(c.action)}; mfa: ${flag(c.mfa)}; incident active: ${flag(c.incident)}`,
      `e.g.     roles [${c.witness.roles.join(", ")}] ${c.witness.action} on ${c.witness.service}${c.witness.mfa ? ", mfa" : ""}${c.witness.incidentActive ? ", incident active" : ""}`,
    ]);
  }
  for (const [dir, title] of [["allow_to_deny", "ALLOW -> DENY"], ["deny_to_allow", "DENY -> ALLOW"]] as const) {
    section(out, `agent requests, ${title}`, diff.agent[dir], (c) => [
      `destination: ${region(c.destination)}`,
      `tokens:      with ${c.scopes.has_all.length === 0 ? "any scopes" : `every one of ${c.scopes.has_all.join(", ")}`}${c.scopes.lacks_one_of === null ? "" : `, lacking one of ${c.scopes.lacks_one_of.join(", ")}`}`,
      `e.g.         ${c.witness.destination} with scopes [${c.witness.scopes.join(", ")}]`,
    ]);
  }
  section(out, "enforcement (observe/enforce per destination)", diff.enforcement, (e) => [
    `destination: ${region(e.destination)}`,
    `mode:        ${e.old ?? "engine default"} -> ${e.new ?? "engine default"}`,
    `e.g.         ${e.witness}`,
  ]);
  return out.join("\n") + "\n";
}
