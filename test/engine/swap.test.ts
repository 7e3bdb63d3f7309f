// Hot swap under concurrent load: every request is answered by exactly one module version,
// its decision is the one that version makes, and no request fails during repeated swaps.
import { cpSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POLICIES_DIR } from "../support/seed.js";
import { call, type DecisionBody, startTestEngine, svc, type TestEngine, TOKEN } from "../http/harness.js";
import { servicePolicy } from "../support/policy-text.js";

const policy = (port: number): string => servicePolicy("chat-db", "chat", "postgres", port);

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(async () => {
  await e?.dispose();
});

describe("atomic swap under load", () => {
  it("answers every request during 30 swaps with one consistent version", async () => {
    // Version -> does chat reach postgres:5432 under it?
    const allows = new Map<string, boolean>();
    allows.set(e.store.current()!.version, false);
    let swapping = true;
    const single: DecisionBody[] = [];
    const batches: DecisionBody[][] = [];
    const failures: string[] = [];

    const client = async (batch: boolean): Promise<void> => {
      while (swapping) {
        const body = batch ? Array.from({ length: 20 }, () => svc("chat", "postgres", 5432)) : svc("chat", "postgres", 5432);
        try {
          const r = await call<DecisionBody | DecisionBody[]>(e.url, "POST", "/v1/evaluate", { body });
          if (r.status !== 200) failures.push(`status ${r.status}: ${r.text}`);
          else if (batch) batches.push(r.body as DecisionBody[]);
          else single.push(r.body as DecisionBody);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const clients = [...Array.from({ length: 6 }, () => client(false)), ...Array.from({ length: 2 }, () => client(true))];

    for (let i = 0; i < 30; i++) {
      const port = i % 2 === 0 ? 5432 : 6000 + i;
      const r = await call<{ version: string }>(e.url, "PUT", "/v1/policies/chat-db", { raw: policy(port), token: TOKEN, headers: { "content-type": "application/yaml" } });
      expect([200, 201]).toContain(r.status);
      allows.set(r.body.version, port === 5432);
      // Let requests run against this version before the next swap.
      await new Promise((res) => setTimeout(res, 5));
    }
    swapping = false;
    await Promise.all(clients);

    expect(failures).toEqual([]);
    expect(single.length).toBeGreaterThan(30);
    expect(batches.length).toBeGreaterThan(5);
    const seen = new Set<string>();
    for (const d of single) {
      expect(allows.has(d.policy_version)).toBe(true);
      expect(d.decision).toBe(allows.get(d.policy_version) ? "ALLOW" : "DENY");
      seen.add(d.policy_version);
    }
    for (const b of batches) {
      const v = b[0]!.policy_version;
      for (const d of b) {
        expect(d.policy_version).toBe(v);
        expect(d.decision).toBe(allows.get(v) ? "ALLOW" : "DENY");
      }
    }
    // Both kinds of module answered during the run.
    expect([...seen].some((v) => allows.get(v))).toBe(true);
    expect([...seen].some((v) => !allows.get(v))).toBe(true);
  });
});

describe("periodic rescan", () => {
  it("picks up a policy path that appears after start (nothing to watch at first)", async () => {
    const outside = mkdtempSync(join(tmpdir(), "zt-late-"));
    const late = join(outside, "policies");
    const x = await startTestEngine({ seedPolicies: false, env: { ZT_POLICY_PATH: late, ZT_RESCAN_INTERVAL_MS: "100" } });
    try {
      // No file policies yet: the empty set denies everything.
      expect(x.store.current()!.policies).toEqual([]);
      expect((await call<DecisionBody>(x.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) })).body.decision).toBe("DENY");
      const staged = join(outside, "staged");
      cpSync(POLICIES_DIR, staged, { recursive: true });
      renameSync(staged, late);
      while (x.store.current()!.policies.length === 0) await new Promise((r) => setTimeout(r, 20));
      expect(x.store.lastReload()).toMatchObject({ result: "success", trigger: "file" });
      expect((await call<DecisionBody>(x.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) })).body.decision).toBe("ALLOW");
    } finally {
      await x.dispose();
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
