// Active incidents for `requireIncident` conditions: the shared state's incidents as this
// replica last read them (shared-state.ts keeps it current). An operator request's incident
// id counts only while the incident is open and has not expired. Reads are a Map lookup.
import type { IncidentHead, IncidentRecord } from "../store/types.js";

export type Incident = IncidentRecord;
export type { IncidentInput } from "../store/state-store.js";

export const INCIDENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Expired incidents stay listed for a day. */
const EXPIRED_LISTED_MS = 86_400_000;

interface Stored {
  head: IncidentHead;
  expiresMs: number;
}

export class IncidentStore {
  private byId = new Map<string, Stored>();

  /** Hot path: is this incident open and not expired at `nowMs`? */
  isActive(id: string, nowMs: number = Date.now()): boolean {
    const s = this.byId.get(id);
    return s !== undefined && s.expiresMs > nowMs;
  }

  list(nowMs: number = Date.now()): { active: Incident[]; expired: Incident[] } {
    const active: Incident[] = [];
    const expired: Incident[] = [];
    for (const s of this.byId.values()) {
      if (s.expiresMs > nowMs) active.push(s.head.incident);
      else if (s.expiresMs + EXPIRED_LISTED_MS >= nowMs) expired.push(s.head.incident);
    }
    const byId = (a: Incident, b: Incident): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return { active: active.sort(byId), expired: expired.sort(byId) };
  }

  get(id: string): Incident | null {
    return this.byId.get(id)?.head.incident ?? null;
  }

  /** The open incidents' latest events (what the local cache keeps). */
  heads(): IncidentHead[] {
    return [...this.byId.values()].map((s) => s.head);
  }

  /**
   * Applies the latest event of each changed incident; `full` replaces everything (a full
   * load). The map is rebuilt aside and swapped, so a reader sees the old or the new state.
   */
  apply(heads: readonly IncidentHead[], full: boolean): void {
    const next = full ? new Map<string, Stored>() : new Map(this.byId);
    for (const h of heads) {
      if (h.closed) next.delete(h.incident.id);
      else next.set(h.incident.id, { head: h, expiresMs: h.incident.expires_at === null ? Number.POSITIVE_INFINITY : Date.parse(h.incident.expires_at) });
    }
    this.byId = next;
  }
}
