// What text the audit trail can store, written once for both gates: the audit record
// validation (engine records, sidecar ingest) and POST /v1/evaluate's input validation, so
// that a request the engine accepts always yields a record the audit trail accepts.

// An unpaired UTF-16 surrogate has no UTF-8 form: the driver would send U+FFFD instead, and
// the stored row would no longer match the record's hash.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `s` cannot be stored as audit text, or null when it can. */
export function unstorableText(s: string): string | null {
  // PostgreSQL text cannot hold NUL: one such record would fail its whole batch.
  if (s.includes("\u0000")) return "must not contain NUL characters";
  if (LONE_SURROGATE.test(s)) return "must be valid Unicode (unpaired UTF-16 surrogate)";
  return null;
}
