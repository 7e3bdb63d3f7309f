// An engine in observe mode (HIP-0044 phase 1) on a real embedded PostgreSQL audit trail,
// with the rollout extension, and traffic sent through POST /v1/evaluate: the trail replay
// and suggest read is the one the engine wrote itself.
import { join } from "node:path";
import { type Audit, auditConfigFromEnv, openAudit } from "../../host/audit/index.js";
import { rolloutExtension } from "../../host/rollout/extension.js";
import { call, H, op, startTestEngine, svc, type TestEngine } from "../http/harness.js";

export interface ObservedTrail {
  engine: TestEngine;
  audit: Audit;
  /** The engine role's DSN (what zt replay --dsn takes). */
  dsn: string;
  /** Decision ids by flow name, as the engine answered them. */
  ids: Map<string, string[]>;
  dispose(): Promise<void>;
}

/** Flows sent, each `count` times: what phase 1 observes. */
export const FLOWS: ReadonlyArray<{ name: string; body: Record<string, unknown>; count: number }> = [
  { name: "gateway-postgres", body: svc("gateway", "postgres", 5432), count: 40 },
  { name: "chat-postgres", body: svc("chat", "postgres", 5432), count: 30 },
  { name: "newsvc-gateway", body: svc("newsvc", "gateway", 4000), count: 20 },
  { name: "newsvc-gateway-4001", body: svc("newsvc", "gateway", 4001), count: 5 },
  { name: "iam-redis", body: svc("iam", "redis", 6379), count: 10 },
  { name: "chat-gateway", body: svc("chat", "gateway", 4000), count: 15 },
  { name: "sre-read", body: op(["sre"], "postgres", "read"), count: 5 },
  { name: "dev-write", body: op(["developer"], "postgres", "write"), count: 3 },
];

export const TOTAL = FLOWS.reduce((n, f) => n + f.count, 0);

export async function observedTrail(): Promise<ObservedTrail> {
  let audit: Audit | null = null;
  const engine = await startTestEngine({
    env: { ZT_MODE: "observe" },
    audit: async (dir) => (audit = await openAudit(auditConfigFromEnv({ ZT_DATA_DIR: join(dir, "data") }))),
    // The audit callback runs before the extensions are built, so its DSN is known by then.
    engine: { extensions: [(core) => rolloutExtension({ trailDsn: audit!.connections.engine })(core)] },
  });
  const a = audit as unknown as Audit;
  const ids = new Map<string, string[]>();
  // Interleaved batches, so that many records share a timestamp (the cursor's tie-break).
  const rounds = Math.max(...FLOWS.map((f) => f.count));
  for (let r = 0; r < rounds; r++) {
    const batch = FLOWS.filter((f) => r < f.count);
    const res = await call<Array<{ decision_id: string; enforced: boolean }>>(engine.url, "POST", "/v1/evaluate", { body: batch.map((f) => f.body) });
    if (res.status !== 200) throw new Error(`evaluate: ${res.status} ${res.text}`);
    res.body.forEach((d, i) => {
      const name = batch[i]!.name;
      ids.set(name, [...(ids.get(name) ?? []), d.decision_id]);
    });
  }
  await a.sink.flush();
  return {
    engine,
    audit: a,
    dsn: a.connections.engine,
    ids,
    dispose: () => engine.dispose(),
  };
}

export { H };
