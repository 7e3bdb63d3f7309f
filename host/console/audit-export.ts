// Export of an audit query, every matching record (not one page): NDJSON, one record per
// line in the API's shape, or CSV with one column per field. Streams page by page through the
// keyset cursor, so an export of millions of records holds one page in memory and stops when
// the client goes away.
import type { Sql } from "postgres";
import { type AuditQuery, decodeCursor, MAX_LIMIT, queryAudit } from "../audit/query.js";
import type { AuditRecord } from "../audit/record.js";

export type ExportFormat = "ndjson" | "csv";

export const CSV_COLUMNS = [
  "timestamp",
  "decision",
  "enforced",
  "source",
  "source_pod",
  "source_node",
  "destination",
  "port",
  "operator",
  "roles",
  "mfa",
  "incident",
  "service",
  "action",
  "policy_matched",
  "reason",
  "policy_version",
  "latency_us",
  "decision_id",
  "origin",
  "caller",
] as const;

function cells(r: AuditRecord): Array<string | number | boolean | null> {
  return [
    r.timestamp,
    r.decision,
    r.enforced,
    r.source?.spiffe_id ?? null,
    r.source?.pod ?? null,
    r.source?.node ?? null,
    r.destination?.spiffe_id ?? null,
    r.destination?.port ?? null,
    r.operator?.subject ?? null,
    r.operator ? r.operator.roles.join(" ") : null,
    r.operator?.mfa ?? null,
    r.operator?.incident ?? null,
    r.target?.service ?? null,
    r.target?.action ?? null,
    r.policy_matched,
    r.reason,
    r.policy_version,
    r.latency_us,
    r.decision_id,
    r.origin,
    r.caller,
  ];
}

/**
 * RFC 4180 quoting. A text cell starting with = + - @ or a control character is prefixed with
 * an apostrophe so that a spreadsheet shows it instead of evaluating it (operator subjects
 * and pod names come from callers).
 */
export function csvCell(v: string | number | boolean | null): string {
  if (v === null) return "";
  if (typeof v !== "string") return String(v);
  const s = /^[=+\-@\t\r]/.test(v) ? "'" + v : v;
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

export function csvLine(r: AuditRecord): string {
  return cells(r).map(csvCell).join(",") + "\r\n";
}

/** The export as a byte stream; `q.limit` is replaced by the paging (`pageSize` records per query). */
export function exportStream(sql: Sql, q: AuditQuery, format: ExportFormat, pageSize: number = MAX_LIMIT): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let cursor = q.cursor;
  let started = false;
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        if (format === "csv") controller.enqueue(enc.encode(CSV_COLUMNS.join(",") + "\r\n"));
      }
      if (done) {
        controller.close();
        return;
      }
      const page = await queryAudit(sql, { ...q, cursor, limit: pageSize });
      const text = page.records.map((r) => (format === "csv" ? csvLine(r) : JSON.stringify(r) + "\n")).join("");
      if (text !== "") controller.enqueue(enc.encode(text));
      if (page.next_cursor === null) done = true;
      else cursor = decodeCursor(page.next_cursor);
    },
  });
}
