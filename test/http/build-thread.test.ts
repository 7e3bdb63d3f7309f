// Builds run off the serving thread (issue 22, finding 1): while a 12,500-rule policy is
// written, /v1/evaluate and /healthz keep answering and the event loop is never held for more
// than a small part of the build; the same write with builds on the serving thread (the old
// path, ZT_BUILD_INLINE=1) holds it for most of the build, which shows the measure sees a
// stall. A build thread that dies fails its build closed (503, nothing written, the old module
// serving) and the next write starts a new one. And a policy name of 253 characters, the
// longest the name rule admits, is stored and served (finding 4).
import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { generateRules, policyYaml } from "../../bench/policy-gen.js";
import { servicePolicy } from "../support/policy-text.js";
import { call, type DecisionBody, startTestEngine, svc, type TestEngine, TOKEN } from "./harness.js";

interface Listing {
  version: string;
  policies: Array<{ name: string; rules: string[]; origin: string }>;
}
interface WriteBody {
  version: string;
  error: { code: string; message: string };
}

const engines: TestEngine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.dispose();
});
async function engine(env: Record<string, string> = {}): Promise<TestEngine> {
  // A 12,500-rule document is 2 MB, over the default policy body limit.
  const e = await startTestEngine({ env: { ZT_MAX_POLICY_BYTES: String(8 * 1024 * 1024), ...env } });
  engines.push(e);
  return e;
}

const put = (e: TestEngine, name: string, text: string) => call<WriteBody>(e.url, "PUT", `/v1/policies/${name}`, { raw: text, token: TOKEN, headers: { "content-type": "application/yaml" } });
const evaluate = (e: TestEngine) => call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("gateway", "postgres", 5432) });

function bigPolicy(name: string, rules: number): string {
  return policyYaml(generateRules(rules)).replace("name: mesh", `name: ${name}`);
}

/**
 * Writes `text` while evaluate and health requests run one after another; the engine runs in
 * this process, so the event-loop delay measured here is the engine's serving loop.
 */
async function writeUnderLoad(e: TestEngine, name: string, text: string) {
  const hist = monitorEventLoopDelay({ resolution: 1 });
  let done = false;
  let evaluates = 0;
  let healths = 0;
  const client = (async () => {
    while (!done) {
      const [d, h] = await Promise.all([evaluate(e), call(e.healthUrl, "GET", "/healthz")]);
      expect(d.status).toBe(200);
      expect(d.body.decision).toBe("ALLOW");
      expect(h.status).toBe(200);
      evaluates++;
      healths++;
    }
  })();
  hist.enable();
  const t0 = performance.now();
  const w = await put(e, name, text);
  const writeMs = performance.now() - t0;
  hist.disable();
  done = true;
  await client;
  return { status: w.status, writeMs, maxHoldMs: hist.max / 1e6, evaluates, healths };
}

describe("finding 1: a build does not stall the serving thread", () => {
  it("evaluate and /healthz answer throughout a 12,500-rule write; the loop's longest hold is a small part of the build", async () => {
    const text = bigPolicy("big-mesh", 12_500);
    const inline = await engine({ ZT_BUILD_INLINE: "1" });
    const before = await writeUnderLoad(inline, "big-mesh", text);
    await inline.dispose();
    engines.length = 0;

    const e = await engine();
    const after = await writeUnderLoad(e, "big-mesh", text);
    console.log(`12,500-rule write: on the serving thread ${before.writeMs.toFixed(0)} ms, longest hold ${before.maxHoldMs.toFixed(0)} ms; on the build thread ${after.writeMs.toFixed(0)} ms, longest hold ${after.maxHoldMs.toFixed(0)} ms, ${after.evaluates} evaluates answered meanwhile`);
    expect(before.status).toBe(201);
    expect(after.status).toBe(201);
    // The old path holds the loop for most of its build: the measure sees a stall.
    expect(before.maxHoldMs).toBeGreaterThan(before.writeMs / 3);
    // Off the serving thread: requests kept being answered, and no hold came near the build.
    expect(after.evaluates).toBeGreaterThanOrEqual(10);
    expect(after.healths).toBeGreaterThanOrEqual(10);
    expect(after.maxHoldMs).toBeLessThan(after.writeMs / 10);
    const listing = await call<Listing>(e.url, "GET", "/v1/policies");
    expect(listing.body.policies.find((p) => p.name === "big-mesh")?.rules).toHaveLength(12_501);
  });

  it("a build thread that dies fails its build closed and is replaced for the next write", async () => {
    // A heap limit far below what a 25,000-rule document needs: the thread runs out of memory.
    const e = await engine({ ZT_BUILD_MEMORY_MB: "48" });
    const before = (await call<Listing>(e.url, "GET", "/v1/policies")).body.version;
    const w = await put(e, "huge", bigPolicy("huge", 25_000));
    expect(w.status).toBe(503);
    expect(w.body.error.code).toBe("build_unavailable");
    expect(w.body.error.message).toMatch(/build thread stopped/);
    // Nothing was written, the old module serves.
    expect((await call<{ versions: unknown[] }>(e.url, "GET", "/v1/policies/huge/history")).body.versions).toEqual([]);
    expect((await call<Listing>(e.url, "GET", "/v1/policies")).body.policies.some((p) => p.name === "huge")).toBe(false);
    const d = await evaluate(e);
    expect(d.body).toMatchObject({ decision: "ALLOW", policy_version: before });
    // The next write gets a new thread.
    const small = await put(e, "small", bigPolicy("small", 10));
    expect(small.status).toBe(201);
    expect((await evaluate(e)).body.policy_version).toBe(small.body.version);
  });
});

describe("finding 4: every name the name rule admits can be stored", () => {
  it("a 253-character policy name is written through the API and served", async () => {
    const e = await engine();
    const name = "a" + "-b".repeat(126);
    expect(name).toHaveLength(253);
    const text = servicePolicy(name, "chat", "postgres", 5432);
    const w = await put(e, name, text);
    expect(w.status).toBe(201);
    const listing = await call<Listing>(e.url, "GET", "/v1/policies");
    expect(listing.body.policies.find((p) => p.name === name)).toMatchObject({ origin: "api", rules: [`${name}/r`] });
    const d = await call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body: svc("chat", "postgres", 5432) });
    expect(d.body).toMatchObject({ decision: "ALLOW", policy_matched: `${name}/r`, policy_version: w.body.version });
    expect((await call(e.url, "GET", `/v1/policies/${name}`)).status).toBe(200);
    // And it survives a restart (the local copy of the shared state holds it too).
    await e.close();
    const again = await startTestEngine({ dir: e.dir, state: e.db! });
    engines.push(again);
    expect((await call<Listing>(again.url, "GET", "/v1/policies")).body.policies.some((p) => p.name === name)).toBe(true);
  });
});
