// Shared pieces of the mesh tests: the CLI as a child process, mesh documents, metric parsing.
import { spawnSync } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { stringify } from "yaml";

export const CLI = "dist/host/cli/main.js";

export function zt(args: readonly string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", ...(input !== undefined ? { input } : {}) });
  return { code: r.status ?? 1, out: r.stdout, err: r.stderr };
}

export interface ClusterDoc {
  name: string;
  address: string;
  endpoint?: string;
  listenPort?: number;
  publicKey: string;
  keyCreated: string;
  privateKeyFile: string;
  allowedIPs?: string[];
  persistentKeepalive?: number;
}

export function meshDoc(meshCIDR: string, clusters: readonly ClusterDoc[], name = "test-mesh"): string {
  return stringify({ apiVersion: "zt.hanzo.ai/v1", kind: "WireGuardMesh", metadata: { name }, spec: { meshCIDR, clusters } });
}

/** Replaces a file the way a ConfigMap volume does: the new content appears whole. */
export function replaceFile(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** `name{cluster="x"} value` lines of a Prometheus exposition, as a map. */
export function metricValues(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`).exec(line);
    if (!m) continue;
    const cluster = /cluster="([^"]*)"/.exec(m[1] ?? "")?.[1] ?? "";
    out.set(cluster, m[2] === "+Inf" ? Infinity : Number(m[2]));
  }
  return out;
}
