// A spool line is one AuditRow as JSON. Lines are written only when a record has to be
// spooled (most records reach PostgreSQL first and are never serialised), and read back on
// replay, where a line edited or damaged on disk must not become a malformed batch: every
// field is checked for its JSON type here; values PostgreSQL refuses are isolated later.
import type { AuditRow } from "./chain.js";

export function rowToLine(row: AuditRow): string {
  return JSON.stringify(row);
}

type FieldType = "string" | "string?" | "number" | "number?" | "boolean" | "boolean?" | "roles?";

const FIELDS: ReadonlyArray<readonly [keyof AuditRow, FieldType]> = [
  ["ts", "string"],
  ["decision_id", "string"],
  ["decision", "string"],
  ["source_spiffe_id", "string?"],
  ["source_pod", "string?"],
  ["source_node", "string?"],
  ["dest_spiffe_id", "string?"],
  ["dest_port", "number?"],
  ["operator_subject", "string?"],
  ["operator_roles", "roles?"],
  ["operator_mfa", "boolean?"],
  ["operator_incident", "string?"],
  ["target_service", "string?"],
  ["target_action", "string?"],
  ["policy_matched", "string?"],
  ["latency_us", "number"],
  ["enforced", "boolean"],
  ["reason", "string"],
  ["policy_version", "string"],
  ["origin", "string"],
  ["caller", "string?"],
  ["chain_id", "string"],
  ["seq", "number"],
  ["prev_hash", "string"],
  ["hash", "string"],
];

function fits(v: unknown, t: FieldType): boolean {
  if (v === null) return t.endsWith("?");
  switch (t) {
    case "string":
    case "string?":
      return typeof v === "string";
    case "number":
    case "number?":
      return typeof v === "number" && Number.isFinite(v);
    case "boolean":
    case "boolean?":
      return typeof v === "boolean";
    case "roles?":
      return Array.isArray(v) && v.every((x) => typeof x === "string");
  }
}

/** The row a spool line holds, or null when the line is not one (corrupt or hand-edited). */
export function lineToRow(line: string): AuditRow | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  for (const [name, type] of FIELDS) if (!fits(o[name], type)) return null;
  return o as unknown as AuditRow;
}
