// The shared state's HTTP surface on one engine (the multi-replica behaviour is in
// test/store/replicas.test.ts): preconditions, history and rollback, the rollout settings and
// their precedence, replicas, shadowed API policies, and an engine without a store.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { servicePolicy } from "../support/policy-text.js";
import { call, type DecisionBody, H, startTestEngine, svc, type TestEngine, TOKEN } from "./harness.js";

const doc = (name: string, to: string, port: number): string => servicePolicy(name, "chat", to, port);

interface ErrorBody {
  error: { code: string; message: string; path?: string; current?: { version: string; revision: number } | null };
}
interface Written {
  version: string;
  policy: { name: string; version: string; revision: number; author: string | null } | null;
  stored: { revision: number; action: string; version: string | null; message: string | null; author: string | null };
}

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(async () => {
  await e?.dispose();
});

const put = (name: string, text: string, headers: Record<string, string> = {}) => call<Written & ErrorBody>(e.url, "PUT", `/v1/policies/${name}`, { raw: text, token: TOKEN, headers: { "content-type": "application/yaml", ...headers } });
const evaluate = (body: unknown) => call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body });

describe("policy writes with preconditions", () => {
  it("If-None-Match: * creates only; a malformed If-Match is a 400; a stale one a 412 that names the current version", async () => {
    const first = await put("pre", doc("pre", "redis", 6379), { "if-none-match": "*", "x-zt-message": "first cut" });
    expect(first.status).toBe(201);
    expect(first.body.stored).toMatchObject({ revision: 1, action: "put", message: "first cut", author: "plaintext:127.0.0.1+admin-token" });
    const again = await put("pre", doc("pre", "redis", 6380), { "if-none-match": "*" });
    expect(again.status).toBe(412);
    expect(again.body.error.current).toEqual({ version: first.body.policy!.version, revision: 1 });
    expect((await put("pre", doc("pre", "redis", 6380), { "if-match": "yesterday" })).status).toBe(400);
    const stale = await put("pre", doc("pre", "redis", 6381), { "if-match": `"sha256:${"0".repeat(64)}"` });
    expect(stale.status).toBe(412);
    expect(stale.headers.get("etag")).toBe(`"${first.body.policy!.version}"`);
    const ok = await put("pre", doc("pre", "redis", 6382), { "if-match": `"${first.body.policy!.version}"` });
    expect(ok.status).toBe(200);
    expect(ok.body.policy!.revision).toBe(2);
    // Deletes honour If-Match too.
    const del = await call<ErrorBody>(e.url, "DELETE", "/v1/policies/pre", { token: TOKEN, headers: { "if-match": `"${first.body.policy!.version}"` } });
    expect(del.status).toBe(412);
    expect((await call(e.url, "DELETE", "/v1/policies/pre", { token: TOKEN, headers: { "if-match": "*" } })).status).toBe(200);
    expect((await call(e.url, "GET", "/v1/policies/pre")).status).toBe(404);
  });

  it("refuses text PostgreSQL cannot store and a bad change message, before anything is built", async () => {
    const nul = await put("nul", doc("nul", "redis", 6379) + "# \u0000\n");
    expect(nul.status).toBe(400);
    expect(nul.body.error.code).toBe("invalid_text");
    const long = await put("msg", doc("msg", "redis", 6379), { "x-zt-message": "x".repeat(1025) });
    expect(long.status).toBe(400);
  });
});

describe("history and rollback", () => {
  it("keeps every version, pages through them, and rolls back by revision or sha256", async () => {
    const v1 = await put("hist", doc("hist", "redis", 1001));
    const v2 = await put("hist", doc("hist", "redis", 1002));
    const v3 = await put("hist", doc("hist", "redis", 1003));
    expect([v1.status, v2.status, v3.status]).toEqual([201, 200, 200]);
    const page = await call<{ versions: Array<{ revision: number }>; next: string | null }>(e.url, "GET", "/v1/policies/hist/history?limit=2");
    expect(page.body.versions.map((v) => v.revision)).toEqual([3, 2]);
    const rest = await call<{ versions: Array<{ revision: number }>; next: string | null }>(e.url, "GET", page.body.next!);
    expect(rest.body.versions.map((v) => v.revision)).toEqual([1]);
    const one = await call<{ document: string; version: string }>(e.url, "GET", "/v1/policies/hist/history/2");
    expect(one.body.document).toBe(doc("hist", "redis", 1002));
    expect(one.headers.get("etag")).toBe(`"${one.body.version}"`);
    expect((await call(e.url, "GET", "/v1/policies/hist/history/9")).status).toBe(404);
    expect((await call(e.url, "GET", "/v1/policies/hist/history?limit=0")).status).toBe(400);

    const bySha = await call<Written>(e.url, "POST", "/v1/policies/hist/rollback", { body: { to: v1.body.policy!.version }, token: TOKEN });
    expect(bySha.status).toBe(200);
    expect(bySha.body.version).toBe(v1.body.version);
    expect(bySha.body.stored).toMatchObject({ revision: 4, action: "rollback" });
    expect((await evaluate(svc("chat", "redis", 1001))).body.decision).toBe("ALLOW");
    expect((await evaluate(svc("chat", "redis", 1003))).body.decision).toBe("DENY");

    expect((await call(e.url, "POST", "/v1/policies/hist/rollback", { body: { to: 99 }, token: TOKEN })).status).toBe(404);
    expect((await call(e.url, "POST", "/v1/policies/hist/rollback", { body: { to: "v1" }, token: TOKEN })).status).toBe(400);
    expect((await call(e.url, "POST", "/v1/policies/hist/rollback", { body: { to: 2 } })).status).toBe(401);
    // A deleted policy comes back by rollback; the deletion itself is not a version to return to.
    expect((await call(e.url, "DELETE", "/v1/policies/hist", { token: TOKEN })).status).toBe(200);
    const toDeletion = await call<ErrorBody>(e.url, "POST", "/v1/policies/hist/rollback", { body: { to: 5 }, token: TOKEN });
    expect(toDeletion.status).toBe(400);
    const back = await call<Written>(e.url, "POST", "/v1/policies/hist/rollback", { body: { to: 3 }, token: TOKEN });
    expect(back.status).toBe(201);
    expect(back.body.policy).toMatchObject({ name: "hist", revision: 6 });
  });

  it("a name a file takes over: the API copy is set aside (listed as shadowed) and a rollback is refused (409)", async () => {
    const v1 = await put("clash", doc("clash", "redis", 2001));
    expect(v1.status).toBe(201);
    expect((await put("clash", doc("clash", "redis", 2002))).status).toBe(200);
    // A file now defines the name: the file owns it, and the API copy is set aside.
    writeFileSync(join(e.policyDir, "clash.yaml"), doc("clash", "iam", 8000));
    await e.store.reloadFiles("file");
    const listing = await call<{ shadowed: Array<{ name: string; file: string; revision: number }> }>(e.url, "GET", "/v1/policies");
    expect(listing.body.shadowed).toEqual([{ name: "clash", file: "ZT_POLICY_PATH/clash.yaml", revision: 2 }]);
    expect((await evaluate(svc("chat", "iam", 8000))).body.decision).toBe("ALLOW");
    const r = await call<ErrorBody>(e.url, "POST", "/v1/policies/clash/rollback", { body: { to: 1 }, token: TOKEN });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("policy_from_file");
  });
});

describe("rollout settings", () => {
  it("a global mode, per-destination modes and canaries, validated and applied by precedence", async () => {
    const g = await call<{ settings: { revision: number; mode: string | null }; effective_mode: string }>(e.url, "GET", "/v1/rollout");
    expect(g.body).toMatchObject({ settings: { revision: 0, mode: null }, effective_mode: "enforce" });
    const etag = g.headers.get("etag")!;
    for (const [body, path] of [
      [{ mode: "sometimes" }, "$.mode"],
      [{ destinations: [{ destination: "spiffe://Hanzo.ai/x", mode: "enforce" }] }, "$.destinations[0].destination"],
      [{ canary: [{ destination: `${H}redis`, replicas: 0 }] }, "$.canary[0].replicas"],
      [{ canary: [{ destination: `${H}redis`, replicas: 1, extra: 1 }] }, "$.canary[0].extra"],
      [{ flags: [] }, "$.flags"],
    ] as const) {
      const r = await call<ErrorBody>(e.url, "PUT", "/v1/rollout", { body, token: TOKEN });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.path).toBe(path);
    }
    const w = await call<{ settings: { revision: number } }>(e.url, "PUT", "/v1/rollout", {
      body: { mode: "observe", destinations: [{ destination: `${H}redis`, mode: "enforce" }], canary: [{ destination: `${H}postgres`, replicas: 1 }] },
      token: TOKEN,
      headers: { "if-match": etag },
    });
    expect(w.status).toBe(200);
    expect((await call(e.url, "PUT", "/v1/rollout", { body: {}, token: TOKEN, headers: { "if-match": etag } })).status).toBe(412);
    // Global observe; redis enforced by its entry; postgres enforced by the canary (the only live replica is this one).
    expect((await evaluate(svc("chat", "iam", 8000))).body.enforced).toBe(false);
    expect((await evaluate(svc("chat", "redis", 1))).body.enforced).toBe(true);
    expect((await evaluate(svc("gateway", "postgres", 5432))).body.enforced).toBe(true);
    const view = await call<{ canary: Array<{ enforcing: string[]; enforced_here: boolean }> }>(e.url, "GET", "/v1/rollout");
    expect(view.body.canary).toEqual([{ destination: `${H}postgres`, replicas: 1, enforcing: ["test"], enforced_here: true }]);
    const listing = await call<{ mode: string }>(e.url, "GET", "/v1/policies");
    expect(listing.body.mode).toBe("observe");
    expect((await call(e.url, "PUT", "/v1/rollout", { body: {}, token: TOKEN })).status).toBe(200);
    expect((await evaluate(svc("chat", "iam", 8000))).body.enforced).toBe(true);
  });

  it("GET /v1/replicas lists this replica with what it serves (admin only)", async () => {
    expect((await call(e.url, "GET", "/v1/replicas")).status).toBe(401);
    const r = await call<{ agree: boolean; replicas: Array<{ id: string; stale: boolean; policy_version: string; matches_store: boolean }> }>(e.url, "GET", "/v1/replicas", { token: TOKEN });
    expect(r.status).toBe(200);
    expect(r.body.agree).toBe(true);
    expect(r.body.replicas).toEqual([expect.objectContaining({ id: "test", stale: false, policy_version: e.store.current()!.version })]);
  });
});

describe("an engine without a shared state", () => {
  it("serves its files and refuses writes with 503", async () => {
    const x = await startTestEngine({ state: false });
    try {
      expect((await call(x.url, "GET", "/v1/policies")).status).toBe(200);
      const w = await call<ErrorBody>(x.url, "PUT", "/v1/policies/a", { raw: doc("a", "redis", 1), token: TOKEN, headers: { "content-type": "application/yaml" } });
      expect(w.status).toBe(503);
      expect(w.body.error.code).toBe("no_state_store");
      expect((await call(x.url, "PUT", "/v1/incidents/INC-1", { body: {}, token: TOKEN })).status).toBe(503);
      expect((await call(x.url, "GET", "/v1/replicas", { token: TOKEN })).status).toBe(503);
      const h = await call<{ status: string; store: { configured: boolean; stale: boolean } }>(x.healthUrl, "GET", "/healthz");
      expect(h.body).toMatchObject({ status: "ok", store: { configured: false, stale: false } });
    } finally {
      await x.dispose();
    }
  });
});
