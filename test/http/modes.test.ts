// Rollout modes: ZT_MODE globally, overridden per destination by the policy's rollout.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { call, type DecisionBody, startTestEngine, svc, type TestEngine } from "./harness.js";

const ROLLOUT = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: rollout
spec:
  rules:
    - from:
        spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat"
      to:
        - spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/search"
          ports: [9200]
  rollout:
    - destination: "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat"
      mode: enforce
    - destination: "spiffe://hanzo.ai/hanzo-k8s/hanzo/flow"
      mode: observe
  defaultAction: DENY
`;

let e: TestEngine | null = null;
afterEach(async () => {
  await e?.dispose();
  e = null;
});

async function start(mode: string): Promise<TestEngine> {
  e = await startTestEngine({ env: { ZT_MODE: mode } });
  writeFileSync(join(e.policyDir, "rollout.yaml"), ROLLOUT);
  await e.store.reloadFiles("file");
  expect(e.store.current()!.policies.map((p) => p.name)).toContain("rollout");
  return e;
}

const evaluate = (x: TestEngine, body: unknown) => call<DecisionBody>(x.url, "POST", "/v1/evaluate", { body });

describe("rollout modes", () => {
  it("enforce (the default): decisions are enforced unless the policy observes that destination", async () => {
    const x = await start("enforce");
    expect((await evaluate(x, svc("chat", "postgres", 5432))).body).toMatchObject({ decision: "DENY", enforced: true });
    expect((await evaluate(x, svc("gateway", "flow", 80))).body).toMatchObject({ decision: "DENY", enforced: false });
    const audited = x.sink!.records().at(-1)!;
    expect(audited).toMatchObject({ decision: "DENY", enforced: false, destination: { spiffe_id: "spiffe://hanzo.ai/hanzo-k8s/hanzo/flow" } });
  });

  it("observe: the computed decision is returned and logged, not enforced; the policy can enforce a destination", async () => {
    const x = await start("observe");
    const deny = await evaluate(x, svc("chat", "postgres", 5432));
    expect(deny.body).toMatchObject({ decision: "DENY", enforced: false, reason: "default_deny" });
    const allow = await evaluate(x, svc("gateway", "postgres", 5432));
    expect(allow.body).toMatchObject({ decision: "ALLOW", enforced: false });
    // chat is enforced by the policy's rollout, whatever ZT_MODE says.
    expect((await evaluate(x, svc("gateway", "chat", 4000))).body).toMatchObject({ decision: "DENY", enforced: true });
    const recs = x.sink!.records();
    expect(recs.find((r) => r.decision_id === deny.body.decision_id)).toMatchObject({ decision: "DENY", enforced: false });
    const listing = await call<{ mode: string }>(x.url, "GET", "/v1/policies");
    expect(listing.body.mode).toBe("observe");
    const metrics = await (await fetch(x.url + "/metrics")).text();
    expect(metrics).toMatch(/zt_observed_denials_total\{source="spiffe:\/\/hanzo.ai\/hanzo-k8s\/hanzo\/chat",dest="spiffe:\/\/hanzo.ai\/hanzo-k8s\/hanzo\/postgres"\} 1/);
    expect(metrics).not.toMatch(/zt_observed_denials_total\{[^}]*dest="spiffe:\/\/hanzo.ai\/hanzo-k8s\/hanzo\/chat"/);
  });
});
