// The store's small parts: the local cache and its checks, canary choice, rollout precedence
// and input, and how store errors are classified.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { canaryReplicas, parseRolloutInput, RolloutView } from "../../host/engine/rollout.js";
import { CacheCorruptError, type CachedState, StateCache } from "../../host/store/cache.js";
import { isDriverWriteAfterClose, isUnreachable } from "../../host/store/errors.js";
import { STATE_WRITER_GROUP } from "../../host/store/migrations.js";
import { DEFAULT_ROLLOUT, type PolicyVersion } from "../../host/store/types.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function version(name: string, document: string, seq = 1): PolicyVersion {
  return { name, seq, rev: seq, action: "put", document, sha256: createHash("sha256").update(document).digest("hex"), rollback_of: null, author: "admin-token", message: null, created_at: new Date(0).toISOString() };
}

function state(policies: PolicyVersion[]): CachedState {
  return { rev: 7, policies, incidents: [], rollout: DEFAULT_ROLLOUT, module: { version: "sha256:abc", files_fingerprint: "f" }, written_at: new Date(0).toISOString() };
}

describe("the local state cache", () => {
  const dir = mkdtempSync(join(tmpdir(), "zt-cache-"));
  dirs.push(dir);
  const cache = new StateCache(dir);

  it("reads back what it wrote, and keeps only the documents still referenced", async () => {
    expect(await cache.read()).toBeNull();
    await cache.write(state([version("a", "doc a"), version("b", "doc b")]));
    await cache.write(state([version("a", "doc a")]));
    const back = await cache.read();
    expect(back?.policies.map((p) => [p.name, p.document])).toEqual([["a", "doc a"]]);
    expect(back?.rev).toBe(7);
    expect(readdirSync(join(dir, "docs"))).toEqual([`${version("a", "doc a").sha256}.txt`]);
  });

  it("refuses a document that no longer matches its sha256, and an index edited by hand", async () => {
    await cache.write(state([version("a", "doc a")]));
    const file = join(dir, "docs", `${version("a", "doc a").sha256}.txt`);
    writeFileSync(file, "allow everything");
    await expect(cache.read()).rejects.toThrow(CacheCorruptError);
    writeFileSync(file, "doc a");
    expect((await cache.read())?.policies).toHaveLength(1);
    const index = join(dir, "index.json");
    writeFileSync(index, readFileSync(index, "utf8").replace('"rev":7', '"rev":8'));
    await expect(cache.read()).rejects.toThrow(/checksum/);
    writeFileSync(index, "{");
    await expect(cache.read()).rejects.toThrow(CacheCorruptError);
  });
});

describe("canary choice", () => {
  const ids = fc.uniqueArray(fc.stringMatching(/^[a-z0-9-]{1,12}$/), { minLength: 1, maxLength: 12 });

  it("picks min(n, live) distinct live replicas, the same whatever the order of the live set", () => {
    fc.assert(
      fc.property(ids, fc.integer({ min: 0, max: 15 }), (live, n) => {
        const chosen = canaryReplicas(`${H}postgres`, live, n);
        expect(chosen).toHaveLength(Math.min(n, live.length));
        expect(new Set(chosen).size).toBe(chosen.length);
        for (const c of chosen) expect(live).toContain(c);
        expect(canaryReplicas(`${H}postgres`, [...live].reverse(), n)).toEqual(chosen);
      }),
    );
  });

  it("moves at most one role when a replica joins (rendezvous hashing)", () => {
    fc.assert(
      fc.property(ids, fc.stringMatching(/^[a-z0-9-]{13,14}$/), fc.integer({ min: 1, max: 5 }), (live, joiner, n) => {
        const before = canaryReplicas(`${H}redis`, live, n);
        const after = canaryReplicas(`${H}redis`, [...live, joiner], n);
        expect(before.filter((x) => !after.includes(x)).length).toBeLessThanOrEqual(1);
      }),
    );
  });
});

describe("rollout precedence", () => {
  it("canary, then destination entries (enforce wins), then the policy's rollout, then the global mode, then ZT_MODE", () => {
    const view = new RolloutView("observe", "r1");
    expect(view.serviceMode(`${H}a`, null)).toBe("observe");
    expect(view.serviceMode(`${H}a`, "enforce")).toBe("enforce");
    view.apply({ ...DEFAULT_ROLLOUT, rev: 1, mode: "enforce", destinations: [{ destination: `${H}*`, mode: "observe" }, { destination: `${H}b`, mode: "enforce" }], canary: [{ destination: `${H}c`, replicas: 1 }] });
    expect(view.global()).toBe("enforce");
    expect(view.serviceMode(`${H}a`, "enforce")).toBe("observe");
    expect(view.serviceMode(`${H}b`, "observe")).toBe("enforce");
    expect(view.serviceMode("spiffe://other.org/x", null)).toBe("enforce");
    expect(view.serviceMode(`${H}c`, null)).toBe("enforce");
    // Another replica joins and the canary goes to whichever the hash picks.
    view.setLive(["r1", "r2"]);
    const here = canaryReplicas(`${H}c`, ["r1", "r2"], 1)[0] === "r1";
    expect(view.serviceMode(`${H}c`, null)).toBe(here ? "enforce" : "observe");
    expect(view.canaryRoles()).toEqual(here ? [`${H}c`] : []);
  });

  it("reads a PUT /v1/rollout body or says where it is wrong", () => {
    expect(parseRolloutInput({})).toEqual({ ok: true, value: { mode: null, destinations: [], canary: [] } });
    expect(parseRolloutInput(null)).toMatchObject({ ok: false, path: "$" });
    expect(parseRolloutInput({ destinations: {} })).toMatchObject({ ok: false, path: "$.destinations" });
    expect(parseRolloutInput({ destinations: [{ destination: `${H}a`, mode: "on" }] })).toMatchObject({ ok: false, path: "$.destinations[0].mode" });
    expect(parseRolloutInput({ canary: [{ destination: 5, replicas: 1 }] })).toMatchObject({ ok: false, path: "$.canary[0].destination" });
    expect(parseRolloutInput({ canary: new Array(1001).fill({ destination: `${H}a`, replicas: 1 }) })).toMatchObject({ ok: false, path: "$.canary" });
  });
});

describe("store errors", () => {
  it("tells an outage from a real error", () => {
    expect(isUnreachable(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isUnreachable(Object.assign(new Error("closed"), { code: "CONNECTION_CLOSED" }))).toBe(true);
    expect(isUnreachable(Object.assign(new Error("terminated"), { code: "57P01" }))).toBe(true);
    expect(isUnreachable(Object.assign(new Error("no such table"), { code: "42P01" }))).toBe(false);
    expect(isUnreachable(Object.assign(new Error("check"), { code: "23514" }))).toBe(false);
    expect(isUnreachable(new TypeError("a bug"))).toBe(false);
  });

  it("recognises only the driver's write-after-close defect", () => {
    const driver = new TypeError("Cannot read properties of null (reading 'write')");
    driver.stack = `${driver.message}\n    at Immediate.nextWrite (/app/node_modules/postgres/src/connection.js:255:22)\n    at process.processImmediate (node:internal/timers:485:21)`;
    expect(isDriverWriteAfterClose(driver)).toBe(true);
    const ours = new TypeError("Cannot read properties of null (reading 'write')");
    ours.stack = `${ours.message}\n    at nextWrite (/app/host/engine/x.js:1:1)`;
    expect(isDriverWriteAfterClose(ours)).toBe(false);
    expect(isDriverWriteAfterClose(new Error("x"))).toBe(false);
  });

  it("the embedded roles grant the engine the store's group role by its name", () => {
    const roles = readFileSync(new URL("../../host/audit/roles.ts", import.meta.url), "utf8");
    expect(roles).toContain(`const STATE_WRITER_GROUP = "${STATE_WRITER_GROUP}"`);
  });
});
