// A test-only AuditSink: appends each record synchronously to a JSON-lines file. It is a
// real sink (a real file, real I/O errors): when the file cannot be written, append()
// throws AuditUnavailableError exactly like the PostgreSQL-backed sink does.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { type AuditRecord, type AuditSink, type AuditSinkStatus, AuditUnavailableError } from "../../host/audit/record.js";
import type { AuditHandle } from "../../host/http/server.js";

export class JsonlAuditSink implements AuditSink {
  private lastError: string | null = null;
  appended = 0;
  closed = false;

  constructor(readonly path: string) {}

  append(record: AuditRecord): void {
    try {
      appendFileSync(this.path, JSON.stringify(record) + "\n");
      this.appended++;
      this.lastError = null;
    } catch (e) {
      this.lastError = (e as Error).message;
      throw new AuditUnavailableError(`audit file not writable: ${this.lastError}`);
    }
  }

  status(): AuditSinkStatus {
    const writable = existsSync(dirname(this.path));
    return { accepting: writable && this.lastError === null, queued: 0, dropped: 0, detail: writable ? (this.lastError ?? "file ok") : "audit directory missing" };
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }

  records(): AuditRecord[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, "utf8")
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as AuditRecord);
  }
}

export function jsonlAudit(path: string): AuditHandle & { sink: JsonlAuditSink } {
  const sink = new JsonlAuditSink(path);
  return { sink, close: () => sink.close() };
}
