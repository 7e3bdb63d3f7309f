// The shared state's records as the engine reads them (snake_case where they leave through the API).
import type { RolloutMode } from "../../compiler/model.js";

/** One row of a policy's history. */
export interface PolicyVersion {
  name: string;
  /** The name's own version number, 1, 2, ... */
  seq: number;
  /** The state revision that wrote it (orders every change). */
  rev: number;
  action: "put" | "delete" | "rollback";
  /** The policy text as written (YAML or JSON); null for a delete. */
  document: string | null;
  /** Hex SHA-256 of `document` (the policy's ETag); null for a delete. */
  sha256: string | null;
  /** For a rollback: the seq whose document it restored. */
  rollback_of: number | null;
  author: string | null;
  message: string | null;
  created_at: string;
}

export interface IncidentRecord {
  id: string;
  description: string | null;
  created_at: string;
  updated_at: string;
  /** RFC 3339, or null for an incident that stays open until closed. */
  expires_at: string | null;
  created_by: string | null;
}

/** An incident's latest event: its state, or closed. */
export interface IncidentHead {
  rev: number;
  closed: boolean;
  incident: IncidentRecord;
}

export interface DestinationMode {
  /** A SPIFFE ID pattern (compiler/spiffe.ts). */
  destination: string;
  mode: RolloutMode;
}

export interface CanaryEntry {
  /** A SPIFFE ID pattern. */
  destination: string;
  /** Enforce on this many live replicas (chosen deterministically), observe on the others. */
  replicas: number;
}

export interface RolloutSettings {
  /** The revision that wrote these settings; 0 for the defaults (nothing written yet). */
  rev: number;
  /** Global mode; null: each replica's ZT_MODE. */
  mode: RolloutMode | null;
  destinations: DestinationMode[];
  canary: CanaryEntry[];
  author: string | null;
  message: string | null;
  at: string | null;
}

export const DEFAULT_ROLLOUT: RolloutSettings = { rev: 0, mode: null, destinations: [], canary: [], author: null, message: null, at: null };

/** Everything that changed after a revision, read in one snapshot. */
export interface StateChanges {
  /** The store's revision the changes bring a replica to. */
  rev: number;
  /** The latest row of each policy name changed since (deletes included). */
  policies: PolicyVersion[];
  /** The latest event of each incident changed since. */
  incidents: IncidentHead[];
  /** The current settings when they changed since, else null. */
  rollout: RolloutSettings | null;
  /** True when the changes start from revision 0 (a full load). */
  full: boolean;
}

/** What a replica reports with each heartbeat. */
export interface ReplicaStatus {
  policy_version: string | null;
  module_sha256: string | null;
  /** The store revision this replica has applied. */
  revision: number;
  mode: RolloutMode;
  /** Canary destinations this replica enforces. */
  canary: string[];
  last_reload: { result: string; trigger: string; at: string; errors: string[] } | null;
  last_error: string | null;
  /** When this replica last matched the store's revision. */
  matched_at: string | null;
}

export interface ReplicaRow {
  id: string;
  started_at: string;
  heartbeat_at: string;
  /** Seconds since the heartbeat, by the database's clock. */
  age_seconds: number;
  status: ReplicaStatus;
}
