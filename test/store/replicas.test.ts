// Three replicas, one truth: three real `zt serve` processes (separate ports, data and policy
// directories) on one real PostgreSQL, the one the test starts. Writes through any replica are
// served by all three with the same module sha256; incidents and canaries are shared; a killed
// feed connection, a PostgreSQL outage and a restart of everything lose nothing.
import { createHash } from "node:crypto";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from "../../host/audit/embedded.js";
import { bootstrapRoles } from "../../host/audit/roles.js";
import { canaryReplicas } from "../../host/engine/rollout.js";
import { servicePolicy as policy } from "../support/policy-text.js";
import { POLICIES_DIR } from "../support/seed.js";
import { type ServeProcess, startServe } from "../support/zt-serve.js";
import { call, type DecisionBody, H, op, svc } from "../http/harness.js";

const TOKEN = "replicas-admin-token-0123456789abcdef";
const IDS = ["zt-0", "zt-1", "zt-2"];

let root: string;
let pg: EmbeddedPostgresHandle;
let pgPort: number;
let dsns: { owner: string; engine: string };
const replicas: ServeProcess[] = [];

async function start(i: number): Promise<ServeProcess> {
  const dir = join(root, IDS[i]!);
  return startServe({
    ZT_REPLICA_ID: IDS[i]!,
    ZT_POLICY_PATH: join(dir, "policies"),
    ZT_DATA_DIR: join(dir, "data"),
    ZT_AUDIT_DSN: dsns.engine,
    ZT_AUDIT_MIGRATE_DSN: dsns.owner,
    ZT_ADMIN_TOKEN: TOKEN,
    ZT_MODE: "observe",
    ZT_STATE_SYNC_INTERVAL_MS: "500",
    ZT_HEARTBEAT_INTERVAL_MS: "300",
    ZT_LOG_LEVEL: "info",
  });
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>): Promise<T> {
  let last: unknown = null;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
    if (last instanceof Error && last.message.startsWith("fatal:")) throw new Error(`${what}: ${last.message}`);
  }
}

const versionOf = async (r: ServeProcess): Promise<string> => (await call<{ version: string }>(r.api, "GET", "/v1/policies")).body.version;
const evaluate = (r: ServeProcess, body: unknown) => call<DecisionBody>(r.api, "POST", "/v1/evaluate", { body });
const put = (r: ServeProcess, name: string, text: string, headers: Record<string, string> = {}) =>
  call<{ version: string; policy: { version: string; revision: number }; error?: { code: string; message: string; errors?: string[]; current?: { version: string } } }>(r.api, "PUT", `/v1/policies/${name}`, { raw: text, token: TOKEN, headers: { "content-type": "application/yaml", ...headers } });

/** Every replica serves `version`. */
async function allServe(version: string): Promise<void> {
  for (const r of replicas) await until(`${r.api} serves ${version}`, async () => (await versionOf(r)) === version);
}

function superSql(): postgres.Sql {
  const u = new URL(pg.dsn);
  u.pathname = "/zt";
  return postgres(u.toString(), { max: 1, onnotice: () => undefined });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "zt-replicas-"));
  chmodSync(root, 0o711);
  pg = await startEmbeddedPostgres({ dataDir: join(root, "pg") });
  pgPort = pg.port;
  dsns = await bootstrapRoles(pg.dsn, root);
  for (const id of IDS) {
    mkdirSync(join(root, id, "policies"), { recursive: true });
    cpSync(POLICIES_DIR, join(root, id, "policies"), { recursive: true });
  }
  // The first one migrates alone; the other two start together.
  replicas.push(await start(0));
  replicas.push(...(await Promise.all([start(1), start(2)])));
});

// A failing test shows what the replicas logged at warn and above.
afterEach(async (ctx) => {
  if (ctx.task.result?.state !== "fail") return;
  for (const r of replicas) {
    const lines = r.logs().filter((l) => l.level === "error" || l.level === "warn").slice(-20);
    const health = await call(r.health, "GET", "/healthz").then((h) => h.text, (e: unknown) => String(e));
    process.stderr.write(`--- ${r.api}\n${lines.map((l) => JSON.stringify(l)).join("\n")}\n${r.stderr().slice(-2000)}\nhealth: ${health}\n`);
  }
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await pg?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("three replicas on one PostgreSQL", () => {
  it("a PUT on one is served, with the same sha256, by all three", async () => {
    const v0 = await versionOf(replicas[0]!);
    for (const r of replicas) expect(await versionOf(r)).toBe(v0);
    const w = await put(replicas[0]!, "chat-db", policy("chat-db", "chat", "postgres", 5432));
    expect(w.status).toBe(201);
    expect(w.body.version).not.toBe(v0);
    await allServe(w.body.version);
    for (const r of replicas) {
      const d = await evaluate(r, svc("chat", "postgres", 5432));
      expect(d.body).toMatchObject({ decision: "ALLOW", policy_matched: "chat-db/r", policy_version: w.body.version });
      const m = await fetch(r.api + "/v1/module.wasm");
      const bytes = new Uint8Array(await m.arrayBuffer());
      expect(`sha256:${createHash("sha256").update(bytes).digest("hex")}`).toBe(w.body.version);
    }
  });

  it("an incident opened on one satisfies requireIncident on the others", async () => {
    const ask = op(["oncall"], "postgres", "restart", true, "INC-42");
    for (const r of replicas) expect((await evaluate(r, ask)).body).toMatchObject({ decision: "DENY", reason: "condition_failed:requireIncident" });
    const open = await call(replicas[1]!.api, "PUT", "/v1/incidents/INC-42", { body: { description: "db failover", ttl_seconds: 3600 }, token: TOKEN });
    expect(open.status).toBe(201);
    for (const r of replicas) await until("incident seen", async () => (await evaluate(r, ask)).body.decision === "ALLOW");
    const closed = await call(replicas[2]!.api, "DELETE", "/v1/incidents/INC-42", { token: TOKEN });
    expect(closed.status).toBe(200);
    for (const r of replicas) await until("incident closed everywhere", async () => (await evaluate(r, ask)).body.decision === "DENY");
  });

  it("a canary enforces a destination on exactly N replicas, chosen from the live set; the audit records say which", async () => {
    const dest = `${H}postgres`;
    // All three are live: each one's heartbeat lists the others.
    await until("three live replicas", async () => {
      const r = await call<{ replicas: Array<{ id: string; stale: boolean }> }>(replicas[0]!.api, "GET", "/v1/replicas", { token: TOKEN });
      return r.body.replicas.filter((x) => !x.stale && IDS.includes(x.id)).length === 3;
    });
    const w = await call(replicas[0]!.api, "PUT", "/v1/rollout", { body: { canary: [{ destination: dest, replicas: 1 }] }, token: TOKEN });
    expect(w.status).toBe(200);
    const chosen = canaryReplicas(dest, IDS, 1);
    expect(chosen).toHaveLength(1);
    const enforcedBy = async (): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < 3; i++) if ((await evaluate(replicas[i]!, svc("iam", "postgres", 5432))).body.enforced) out.push(IDS[i]!);
      return out;
    };
    await until("canary applied", async () => JSON.stringify(await enforcedBy()) === JSON.stringify(chosen));
    // Another destination stays in observe mode everywhere (ZT_MODE=observe).
    for (const r of replicas) expect((await evaluate(r, svc("gateway", "iam", 8000))).body.enforced).toBe(false);
    const listed = await call<{ replicas: Array<{ id: string; canary: string[] }> }>(replicas[2]!.api, "GET", "/v1/replicas", { token: TOKEN });
    await until("roles reported", async () => {
      const l = await call<{ replicas: Array<{ id: string; canary: string[] }> }>(replicas[2]!.api, "GET", "/v1/replicas", { token: TOKEN });
      return l.body.replicas.filter((x) => x.canary.includes(dest)).map((x) => x.id).join() === chosen.join();
    });
    expect(listed.status).toBe(200);
    // The audit trail shows which replica enforced.
    for (const r of replicas) await call(r.api, "POST", "/v1/evaluate", { body: svc("chat", "postgres", 9999) });
    const sql = superSql();
    try {
      const rows = await until("records of all three", async () => {
        const got = await sql<{ origin: string; enforced: boolean }[]>`
          SELECT DISTINCT origin, enforced FROM zt_audit.decisions WHERE dest_port = 9999 ORDER BY origin`;
        return got.length === 3 ? got : null;
      });
      expect(rows.map((x) => [x.origin, x.enforced])).toEqual(IDS.map((id) => [`engine:${id}`, chosen.includes(id)]));
    } finally {
      await sql.end();
    }
    await call(replicas[0]!.api, "PUT", "/v1/rollout", { body: {}, token: TOKEN });
    await until("canary removed", async () => (await enforcedBy()).length === 0);
  });

  it("If-Match: a stale ETag gets 412 with the current version; two replicas racing, exactly one wins", async () => {
    const one = await call<{ policy: { version: string } }>(replicas[1]!.api, "GET", "/v1/policies/chat-db");
    const etag = one.headers.get("etag")!;
    expect(etag).toBe(`"${one.body.policy.version}"`);
    const next = policy("chat-db", "chat", "postgres", 6432);
    const ok = await put(replicas[1]!, "chat-db", next, { "if-match": etag });
    expect(ok.status).toBe(200);
    const stale = await put(replicas[2]!, "chat-db", policy("chat-db", "chat", "postgres", 7432), { "if-match": etag });
    expect(stale.status).toBe(412);
    expect(stale.body.error).toMatchObject({ code: "precondition_failed", current: { version: ok.body.policy.version } });
    expect(stale.headers.get("etag")).toBe(`"${ok.body.policy.version}"`);
    // A race: the same If-Match on two replicas at once.
    const current = `"${ok.body.policy.version}"`;
    const [a, b] = await Promise.all([
      put(replicas[0]!, "chat-db", policy("chat-db", "chat", "postgres", 1111), { "if-match": current }),
      put(replicas[2]!, "chat-db", policy("chat-db", "chat", "postgres", 2222), { "if-match": current }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 412]);
    const winner = a.status === 200 ? a : b;
    await allServe(winner.body.version);
  });

  it("409 on a name a file owns; 422 with line:col on an invalid policy, and no replica changes", async () => {
    const before = await Promise.all(replicas.map(versionOf));
    const owned = await put(replicas[0]!, "hanzo-core-policy", policy("hanzo-core-policy", "chat", "postgres", 5432));
    expect(owned.status).toBe(409);
    expect(owned.body.error!.message).toContain("ZT_POLICY_PATH/hanzo-core-policy.yaml");
    const bad = await put(replicas[1]!, "broken", policy("broken", "chat", "postgres", 99999).replace("spiffe://hanzo.ai/hanzo-k8s/hanzo/chat", "spiffe://Hanzo.ai/x"));
    expect(bad.status).toBe(422);
    expect(bad.body.error!.errors!.length).toBe(2);
    for (const e of bad.body.error!.errors!) expect(e).toMatch(/^\d+:\d+: /);
    // Nothing was stored: after a full sync period every replica still serves what it did.
    const rev = (await call<{ store: { store_revision: number } }>(replicas[1]!.health, "GET", "/healthz")).body.store.store_revision;
    for (const r of replicas) {
      await until("checked the store", async () => {
        const h = await call<{ store: { revision: number; matched_at: string } }>(r.health, "GET", "/healthz");
        return h.body.store.revision === rev && Date.now() - Date.parse(h.body.store.matched_at) < 400;
      });
    }
    expect(await Promise.all(replicas.map(versionOf))).toEqual(before);
    expect((await call(replicas[2]!.api, "GET", "/v1/policies/broken")).status).toBe(404);
  });

  it("rollback restores an earlier version's sha256 on every replica", async () => {
    const v1 = await put(replicas[0]!, "rb", policy("rb", "search", "postgres", 5432));
    expect(v1.status).toBe(201);
    const v2 = await put(replicas[0]!, "rb", policy("rb", "search", "redis", 6379));
    expect(v2.status).toBe(200);
    await allServe(v2.body.version);
    const history = await call<{ versions: Array<{ revision: number; action: string; version: string }> }>(replicas[1]!.api, "GET", "/v1/policies/rb/history");
    expect(history.body.versions.map((v) => [v.revision, v.action])).toEqual([[2, "put"], [1, "put"]]);
    const back = await call<{ version: string; policy: { version: string; revision: number } }>(replicas[2]!.api, "POST", "/v1/policies/rb/rollback", { body: { to: 1 }, token: TOKEN });
    expect(back.status).toBe(200);
    expect(back.body.version).toBe(v1.body.version);
    expect(back.body.policy).toMatchObject({ version: v1.body.policy.version, revision: 3 });
    await allServe(v1.body.version);
    const h2 = await call<{ versions: Array<{ revision: number; action: string; rollback_of: number | null }> }>(replicas[0]!.api, "GET", "/v1/policies/rb/history?limit=1");
    expect(h2.body.versions).toEqual([expect.objectContaining({ revision: 3, action: "rollback", rollback_of: 1 })]);
  });

  it("the engine's role cannot rewrite history", async () => {
    const sql = postgres(dsns.engine, { max: 1, onnotice: () => undefined });
    try {
      await expect(sql`UPDATE zt_state.policy_versions SET document = 'x'`).rejects.toThrow(/permission denied/);
      await expect(sql`DELETE FROM zt_state.incident_events`).rejects.toThrow(/permission denied/);
      await expect(sql`UPDATE zt_state.revision SET rev = 0`).rejects.toThrow(/only moves forward/);
    } finally {
      await sql.end();
    }
  });

  it("a replica whose connections are killed while a write happens converges after it reconnects", async () => {
    const sql = superSql();
    try {
      const kill = (): Promise<unknown> => sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE ${"%-zt-2"} OR application_name = ${"zt-state-zt-2"}`;
      const killed = await kill();
      expect((killed as unknown[]).length).toBeGreaterThan(0);
      const w = await put(replicas[0]!, "during-kill", policy("during-kill", "chat", "redis", 6379));
      expect(w.status).toBe(201);
      await kill();
      await allServe(w.body.version);
      // The feed is back for later writes.
      await until("feed listening again", async () => (await call<{ store: { feed_listening: boolean } }>(replicas[2]!.health, "GET", "/healthz")).body.store.feed_listening);
    } finally {
      await sql.end();
    }
  });

  it("metrics and health report the version, the replica's match with the store, and staleness", async () => {
    const version = await versionOf(replicas[1]!);
    const text = await (await fetch(replicas[1]!.health + "/metrics")).text();
    expect(text).toContain(`zt_policy_info{version="${version}"} 1`);
    expect(text).toMatch(/^zt_store_up 1$/m);
    expect(text).toMatch(/^zt_store_stale 0$/m);
    expect(text).toMatch(/^zt_store_seconds_since_match \d/m);
    const h = await call<{ status: string; store: { connected: boolean; stale: boolean; replica: string } }>(replicas[1]!.health, "GET", "/healthz");
    expect(h.body).toMatchObject({ status: "ok", store: { connected: true, stale: false, replica: "zt-1" } });
  });

  it("during a PostgreSQL outage replicas keep serving, report stale, refuse writes; one restarted meanwhile serves its cached module", async () => {
    const version = await versionOf(replicas[0]!);
    await pg.stop();
    for (const r of replicas) {
      await until("stale reported", async () => {
        const h = await call<{ status: string; store: { connected: boolean; stale: boolean } }>(r.health, "GET", "/healthz");
        return h.body.store.stale && !h.body.store.connected && h.body.status === "ok";
      });
      expect((await evaluate(r, svc("chat", "redis", 6379))).body).toMatchObject({ decision: "ALLOW", policy_version: version });
    }
    expect(await (await fetch(replicas[0]!.health + "/metrics")).text()).toMatch(/^zt_store_stale 1$/m);
    const refused = await put(replicas[0]!, "outage", policy("outage", "chat", "iam", 8000));
    expect(refused.status).toBe(503);
    expect(refused.body.error!.code).toBe("store_unavailable");
    expect((await call(replicas[1]!.api, "PUT", "/v1/incidents/INC-9", { body: {}, token: TOKEN })).status).toBe(503);
    // zt-2 restarts during the outage: it comes up from its local cache.
    expect(await replicas[2]!.stop()).toBe(0);
    replicas[2] = await start(2);
    expect(await versionOf(replicas[2]!)).toBe(version);
    expect((await evaluate(replicas[2]!, svc("chat", "redis", 6379))).body).toMatchObject({ decision: "ALLOW", policy_version: version });
    const h = await call<{ store: { source: string; stale: boolean } }>(replicas[2]!.health, "GET", "/healthz");
    expect(h.body.store).toMatchObject({ source: "cache", stale: true });
    // PostgreSQL is back (same port): everyone reconnects, and writes work again.
    pg = await startEmbeddedPostgres({ dataDir: join(root, "pg"), port: pgPort });
    for (const r of replicas) await until("reconnected", async () => (await call<{ store: { stale: boolean } }>(r.health, "GET", "/healthz")).body.store.stale === false);
    const after = await until("write accepted", async () => {
      const w = await put(replicas[2]!, "outage", policy("outage", "chat", "iam", 8000));
      return w.status === 201 ? w : null;
    });
    await allServe(after.body.version);
  }, 180_000);

  it("restarting every process loses no API-written policy or incident", async () => {
    const inc = await call(replicas[0]!.api, "PUT", "/v1/incidents/INC-77", { body: { description: "kept" }, token: TOKEN });
    expect(inc.status).toBe(201);
    const version = await versionOf(replicas[0]!);
    await allServe(version);
    const names = (await call<{ policies: Array<{ name: string; origin: string }> }>(replicas[0]!.api, "GET", "/v1/policies")).body.policies.filter((p) => p.origin === "api").map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(["chat-db", "rb", "during-kill", "outage"]));
    for (const code of await Promise.all(replicas.map((r) => r.stop()))) expect(code).toBe(0);
    replicas.splice(0, 3, ...(await Promise.all([start(0), start(1), start(2)])));
    await allServe(version);
    for (const r of replicas) {
      const l = await call<{ policies: Array<{ name: string; origin: string }> }>(r.api, "GET", "/v1/policies");
      expect(l.body.policies.filter((p) => p.origin === "api").map((p) => p.name)).toEqual(names);
      expect((await evaluate(r, op(["oncall"], "redis", "read", true, "INC-77"))).body.decision).toBe("ALLOW");
    }
  }, 180_000);
});
