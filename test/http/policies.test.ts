import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, type DecisionBody, startTestEngine, svc, type TestEngine, TOKEN } from "./harness.js";

interface Listing {
  version: string;
  module_sha256: string;
  loaded_at: string;
  mode: string;
  policies: Array<{ name: string; kind: string; rules: string[]; origin: string; file: string | null; version: string; loaded_at: string; revision: number | null; author: string | null }>;
  last_reload: { result: string; trigger: string } | null;
}
interface ChangeBody {
  version: string;
  previous_version: string | null;
  policy: Listing["policies"][number] | null;
  stored: { revision: number; action: string; version: string | null; author: string | null; message: string | null };
}
interface ErrorBody {
  error: { code: string; message: string; errors: string[]; diagnostics: Array<{ line: number; col: number; message: string }> };
}

const CHAT_TO_PG = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: chat-db
spec:
  rules:
    - name: chat-reads-pg
      from:
        spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat"
      to:
        - spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres"
          ports: [5432]
  defaultAction: DENY
`;

const BROKEN = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: chat-db
spec:
  rules:
    - from:
        spiffe: "spiffe://Hanzo.ai/x"
      to:
        - spiffe: "spiffe://hanzo.ai/a/b/c"
          ports: [99999]
  defaultAction: DENY
`;

let e: TestEngine;
beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(async () => {
  await e?.dispose();
});

const put = (name: string, text: string, token: string | null = TOKEN, ct = "application/yaml") => call<ChangeBody & ErrorBody>(e.url, "PUT", `/v1/policies/${name}`, { raw: text, token, headers: { "content-type": ct } });
const evaluate = (body: unknown) => call<DecisionBody>(e.url, "POST", "/v1/evaluate", { body });

describe("GET /v1/policies", () => {
  it("lists the active policies with their source, rules and versions", async () => {
    const r = await call<Listing>(e.url, "GET", "/v1/policies");
    expect(r.status).toBe(200);
    expect(r.body.version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.body.mode).toBe("enforce");
    expect(r.body.policies.map((p) => p.name)).toEqual(["hanzo-core-policy", "production-access"]);
    const core = r.body.policies[0]!;
    expect(core).toMatchObject({ kind: "ServiceAccessPolicy", origin: "file", file: "ZT_POLICY_PATH/hanzo-core-policy.yaml", revision: null, rules: ["hanzo-core-policy/rule-1", "hanzo-core-policy/rule-2", "hanzo-core-policy/rule-3"] });
    expect(core.version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(Number.isNaN(Date.parse(core.loaded_at))).toBe(false);
    expect(r.body.policies[1]).toMatchObject({ kind: "OperatorAccessPolicy", rules: ["production-access/rule-1", "production-access/rule-2", "production-access/rule-3"] });
    expect(r.body.last_reload).toMatchObject({ result: "success", trigger: "startup" });
    const one = await call<{ policy: { name: string } }>(e.url, "GET", "/v1/policies/production-access");
    expect(one.body.policy.name).toBe("production-access");
    expect((await call(e.url, "GET", "/v1/policies/nope")).status).toBe(404);
  });
});

describe("PUT/DELETE /v1/policies/{name}", () => {
  it("refuses writes without the admin token, or with a wrong one", async () => {
    const none = await put("chat-db", CHAT_TO_PG, null);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe("Bearer");
    const wrong = await put("chat-db", CHAT_TO_PG, "not-the-token-at-all-xxxxxxxx");
    expect(wrong.status).toBe(401);
    expect((wrong.body as unknown as ErrorBody).error.code).toBe("invalid_admin_token");
    expect(wrong.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
    const basic = await call(e.url, "PUT", "/v1/policies/chat-db", { raw: CHAT_TO_PG, headers: { authorization: "Basic YWRtaW46YWRtaW4=" } });
    expect(basic.status).toBe(401);
    const del = await call(e.url, "DELETE", "/v1/policies/hanzo-core-policy");
    expect(del.status).toBe(401);
    expect((await evaluate(svc("chat", "postgres", 5432))).body.decision).toBe("DENY");
  });

  it("validates, compiles and swaps; 422 with every line:col keeps the old module", async () => {
    const before = (await call<Listing>(e.url, "GET", "/v1/policies")).body.version;
    const bad = await put("chat-db", BROKEN);
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("invalid_policy");
    expect(bad.body.error.errors.length).toBeGreaterThanOrEqual(2);
    for (const line of bad.body.error.errors) expect(line).toMatch(/^\d+:\d+: .+/);
    expect(bad.body.error.errors.some((l) => l.startsWith("8:"))).toBe(true);
    expect(bad.body.error.errors.some((l) => l.startsWith("11:"))).toBe(true);
    expect((await call<Listing>(e.url, "GET", "/v1/policies")).body.version).toBe(before);
    expect((await evaluate(svc("chat", "postgres", 5432))).body).toMatchObject({ decision: "DENY", policy_version: before });

    const ok = await put("chat-db", CHAT_TO_PG);
    expect(ok.status).toBe(201);
    expect(ok.body.previous_version).toBe(before);
    expect(ok.body.version).not.toBe(before);
    const sha = createHash("sha256").update(CHAT_TO_PG).digest("hex");
    expect(ok.body.policy).toMatchObject({ name: "chat-db", origin: "api", file: null, rules: ["chat-db/chat-reads-pg"], version: `sha256:${sha}`, revision: 1, author: "plaintext:127.0.0.1+admin-token" });
    expect(ok.headers.get("etag")).toBe(`"sha256:${sha}"`);
    const d = await evaluate(svc("chat", "postgres", 5432));
    expect(d.body).toMatchObject({ decision: "ALLOW", policy_matched: "chat-db/chat-reads-pg", policy_version: ok.body.version });
    // Stored in the shared state, its text as sent.
    const stored = await call<{ document: string; revision: number }>(e.url, "GET", "/v1/policies/chat-db/history/1");
    expect(stored.body).toMatchObject({ document: CHAT_TO_PG, revision: 1 });
    // Same name again: an update (200).
    expect((await put("chat-db", CHAT_TO_PG)).status).toBe(200);
  });

  it("takes JSON too, and refuses a name mismatch, several documents, an empty body and a bad name", async () => {
    const json = JSON.stringify({
      apiVersion: "zt.hanzo.ai/v1",
      kind: "OperatorAccessPolicy",
      metadata: { name: "auditors" },
      spec: { rules: [{ role: "auditor", targets: [{ service: "*", actions: ["logs"] }] }] },
    });
    const r = await put("auditors", json, TOKEN, "application/json");
    expect(r.status).toBe(201);
    expect(r.body.policy).toMatchObject({ kind: "OperatorAccessPolicy", rules: ["auditors/rule-1"] });
    const mismatch = await put("other-name", CHAT_TO_PG);
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error.errors[0]).toContain('does not match the name in the URL ("other-name")');
    const two = await put("chat-db", CHAT_TO_PG + "---\n" + CHAT_TO_PG.replace("chat-db", "chat-db2"));
    expect(two.status).toBe(422);
    expect(two.body.error.errors[0]).toContain("exactly one policy document");
    expect((await put("chat-db", "  \n")).status).toBe(400);
    const badName = await put("Bad_Name", CHAT_TO_PG);
    expect(badName.status).toBe(400);
    expect((badName.body as unknown as { error: { code: string } }).error.code).toBe("invalid_name");
    const notYaml = await put("chat-db", "{{{ : : :");
    expect(notYaml.status).toBe(422);
  });

  it("a name a file owns cannot be written through the API (409 naming the file)", async () => {
    const override = CHAT_TO_PG.replace("name: chat-db", "name: hanzo-core-policy");
    const v0 = e.store.current()!.version;
    const r = await put("hanzo-core-policy", override);
    expect(r.status).toBe(409);
    expect((r.body as unknown as ErrorBody).error).toMatchObject({ code: "policy_from_file", file: "ZT_POLICY_PATH/hanzo-core-policy.yaml" });
    expect((r.body as unknown as ErrorBody).error.message).toContain("ZT_POLICY_PATH/hanzo-core-policy.yaml");
    expect(e.store.current()!.version).toBe(v0);
    expect((await evaluate(svc("gateway", "postgres", 5432))).body.decision).toBe("ALLOW");
    // The file policy itself cannot be deleted through the API.
    const fromFile = await call<ErrorBody>(e.url, "DELETE", "/v1/policies/hanzo-core-policy", { token: TOKEN });
    expect(fromFile.status).toBe(409);
    expect(fromFile.body.error.code).toBe("policy_from_file");
    expect((await call(e.url, "DELETE", "/v1/policies/never-existed", { token: TOKEN })).status).toBe(404);
  });

  it("API policies survive a restart", async () => {
    const version = (await call<Listing>(e.url, "GET", "/v1/policies")).body.version;
    await e.close();
    const again = await startTestEngine({ dir: e.dir, state: e.db! });
    try {
      const l = await call<Listing>(again.url, "GET", "/v1/policies");
      expect(l.body.version).toBe(version);
      expect(l.body.policies.find((p) => p.name === "chat-db")).toMatchObject({ origin: "api", file: null, revision: 2 });
      expect((await call<DecisionBody>(again.url, "POST", "/v1/evaluate", { body: svc("chat", "postgres", 5432) })).body.decision).toBe("ALLOW");
    } finally {
      await again.close();
    }
    e = await startTestEngine({ dir: e.dir, state: e.db! });
  });
});

describe("GET /v1/module.wasm", () => {
  it("serves the active module with its sha256, ETag and 304", async () => {
    const res = await fetch(e.url + "/v1/module.wasm");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/wasm");
    const bytes = new Uint8Array(await res.arrayBuffer());
    const hex = createHash("sha256").update(bytes).digest("hex");
    expect(res.headers.get("x-zt-module-sha256")).toBe(hex);
    const version = e.store.current()!.version;
    expect(version).toBe(`sha256:${hex}`);
    expect(res.headers.get("etag")).toBe(`"${version}"`);
    expect(WebAssembly.validate(bytes)).toBe(true);
    const cached = await fetch(e.url + "/v1/module.wasm", { headers: { "if-none-match": `"${version}"` } });
    expect(cached.status).toBe(304);
  });
});

describe("file policies", () => {
  it("a file change is picked up without a restart; a broken file keeps the old module", async () => {
    const v0 = e.store.current()!.version;
    writeFileSync(join(e.policyDir, "search.yaml"), CHAT_TO_PG.replace(/chat-db/g, "search-db").replace(/chat-reads-pg/, "search-reads-pg").replace("hanzo/chat", "hanzo/search"));
    await until(() => e.store.current()!.version !== v0);
    expect((await evaluate(svc("search", "postgres", 5432))).body).toMatchObject({ decision: "ALLOW", policy_matched: "search-db/search-reads-pg" });
    const v1 = e.store.current()!.version;
    writeFileSync(join(e.policyDir, "search.yaml"), BROKEN.replace("chat-db", "search-db"));
    await until(() => e.store.lastReload()?.result === "failure");
    expect(e.store.current()!.version).toBe(v1);
    const listing = await call<Listing & { last_reload: { errors: string[] } }>(e.url, "GET", "/v1/policies");
    // Answers name the file by its configured directory, not by the host's layout.
    expect(listing.body.last_reload.errors.some((l) => l.startsWith("ZT_POLICY_PATH/search.yaml:8:"))).toBe(true);
    const health = await call<{ last_reload: { errors: string[] } }>(e.healthUrl, "GET", "/healthz");
    expect(health.body.last_reload.errors.some((l) => l.startsWith("ZT_POLICY_PATH/search.yaml:8:"))).toBe(true);
    expect(health.text).not.toContain(e.dir);
    expect((await evaluate(svc("search", "postgres", 5432))).body.decision).toBe("ALLOW");
  });
});

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}
