// The failure policy (ZT_AUDIT_ON_FAILURE) for a record a sink cannot take, shared by the
// engine thread's sink and the writer: the caller counts the record as dropped, then
// "deny" throws (the request is denied) and "allow-and-count" logs, at most once a second.
import { AuditUnavailableError } from "./record.js";

export type OnSpoolFailure = "deny" | "allow-and-count";

export class RecordRefusal {
  private lastLog = 0;

  constructor(
    readonly mode: OnSpoolFailure,
    private readonly log: (obj: Record<string, unknown>) => void,
  ) {}

  refuse(reason: string, droppedTotal: number): void {
    if (this.mode === "deny") throw new AuditUnavailableError(reason);
    const now = Date.now();
    if (now - this.lastLog < 1000) return;
    this.lastLog = now;
    this.log({ msg: "audit: record dropped (ZT_AUDIT_ON_FAILURE=allow-and-count)", reason, dropped_total: droppedTotal });
  }
}
