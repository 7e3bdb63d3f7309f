// WireGuard peers up, as the mesh agents report them: the engine sees no tunnel, so the console
// reads `zt_wireguard_peer_up{cluster}` from each configured agent's own /metrics
// (ZT_CONSOLE_MESH_METRICS) when the overview is drawn. An agent that cannot be read is shown
// as such, never as peers down.
import parsePrometheusTextFormat from "parse-prometheus-text-format";

export const PEER_UP_METRIC = "zt_wireguard_peer_up";

export interface MeshPeer {
  /** The peer cluster (the metric's `cluster` label). */
  cluster: string;
  up: boolean;
}

export type AgentPeers = { url: string; ok: true; peers: MeshPeer[] } | { url: string; ok: false; error: string };

/** The peers in one agent's exposition; throws when the text is not Prometheus' format. */
export function peersFromExposition(text: string): MeshPeer[] {
  const family = parsePrometheusTextFormat(text).find((f) => f.name === PEER_UP_METRIC);
  return (family?.metrics ?? [])
    .map((m) => ({ cluster: m.labels?.cluster ?? "", up: Number(m.value) === 1 }))
    .sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
}

/** Reads every agent at once, each within `timeoutMs`. */
export function readMeshPeers(urls: readonly string[], timeoutMs = 2000): Promise<AgentPeers[]> {
  return Promise.all(
    urls.map(async (url): Promise<AgentPeers> => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "text/plain" }, redirect: "error" });
        if (!res.ok) return { url, ok: false, error: `HTTP ${res.status}` };
        return { url, ok: true, peers: peersFromExposition(await res.text()) };
      } catch (e) {
        const err = e as Error;
        return { url, ok: false, error: err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (err.cause as Error | undefined)?.message ?? err.message };
      }
    }),
  );
}
