// Active incidents for `requireIncident` conditions. An operator request's incident id
// counts only while the incident exists and has not expired. Stored as one JSON file under
// ZT_DATA_DIR so a restart keeps them; writes are rare, reads are a Map lookup.
import { readFile } from "node:fs/promises";
import { writeFileDurable } from "../common/durable-file.js";

export interface Incident {
  id: string;
  description: string | null;
  created_at: string;
  updated_at: string;
  /** RFC 3339, or null for an incident that stays active until deleted. */
  expires_at: string | null;
  /** Who declared it (the admin identity), when known. */
  created_by: string | null;
}

export interface IncidentInput {
  description?: string | null;
  expires_at?: string | null;
}

export const INCIDENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

interface Stored {
  incident: Incident;
  expiresMs: number;
}

export class IncidentStore {
  private readonly byId = new Map<string, Stored>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly file: string) {}

  static async open(file: string): Promise<IncidentStore> {
    const store = new IncidentStore(file);
    let text: string | null = null;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (text !== null) {
      const parsed = JSON.parse(text) as { incidents?: Incident[] };
      for (const inc of parsed.incidents ?? []) store.byId.set(inc.id, stored(inc));
    }
    return store;
  }

  /** Hot path: is this incident declared and not expired at `nowMs`? */
  isActive(id: string, nowMs: number = Date.now()): boolean {
    const s = this.byId.get(id);
    return s !== undefined && s.expiresMs > nowMs;
  }

  list(nowMs: number = Date.now()): { active: Incident[]; expired: Incident[] } {
    const active: Incident[] = [];
    const expired: Incident[] = [];
    for (const s of this.byId.values()) (s.expiresMs > nowMs ? active : expired).push(s.incident);
    const byId = (a: Incident, b: Incident): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return { active: active.sort(byId), expired: expired.sort(byId) };
  }

  get(id: string): Incident | null {
    return this.byId.get(id)?.incident ?? null;
  }

  /** Declares or updates an incident; durable before it resolves. */
  async put(id: string, input: IncidentInput, caller: string | null, nowMs: number = Date.now()): Promise<{ created: boolean; incident: Incident }> {
    const prev = this.byId.get(id);
    const now = new Date(nowMs).toISOString();
    const incident: Incident = {
      id,
      description: input.description ?? prev?.incident.description ?? null,
      created_at: prev?.incident.created_at ?? now,
      updated_at: now,
      expires_at: input.expires_at === undefined ? (prev?.incident.expires_at ?? null) : input.expires_at,
      created_by: prev?.incident.created_by ?? caller,
    };
    await this.commit((next) => {
      prune(next, nowMs);
      next.set(id, stored(incident));
    });
    return { created: prev === undefined, incident };
  }

  async delete(id: string): Promise<boolean> {
    if (!this.byId.has(id)) return false;
    await this.commit((next) => void next.delete(id));
    return true;
  }

  // Builds the next state on a copy, makes it durable, then swaps it in: readers never see
  // a state that is not on disk. Writes are serialised so the file holds the latest state.
  private commit(change: (next: Map<string, Stored>) => void): Promise<void> {
    const run = async (): Promise<void> => {
      const next = new Map(this.byId);
      change(next);
      const incidents = [...next.values()].map((s) => s.incident);
      await writeFileDurable(this.file, JSON.stringify({ incidents }, null, 2) + "\n");
      this.byId.clear();
      for (const [k, v] of next) this.byId.set(k, v);
    };
    const p = this.writing.then(run, run);
    this.writing = p.catch(() => undefined);
    return p;
  }
}

/** Expired incidents stay listed for a day, then the next write drops them. */
function prune(map: Map<string, Stored>, nowMs: number): void {
  for (const [id, s] of map) if (s.expiresMs + 86_400_000 < nowMs) map.delete(id);
}

function stored(incident: Incident): Stored {
  return { incident, expiresMs: incident.expires_at === null ? Number.POSITIVE_INFINITY : Date.parse(incident.expires_at) };
}
