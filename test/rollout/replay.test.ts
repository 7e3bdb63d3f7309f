// zt replay and POST /v1/replay over a trail the engine wrote itself in observe mode (real
// embedded PostgreSQL): every changed flow with its count, first/last seen and sample ids;
// pages of any size give the same answer; bad input is a clear error with its exit code.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { loadPolicyTexts } from "../../compiler/load.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { replay } from "../../host/rollout/replay.js";
import { openTrailConnection } from "../../host/rollout/trail.js";
import { call, TOKEN } from "../http/harness.js";
import { seedSet } from "../support/seed.js";
import { tempTree, ztAsync } from "./cli.js";
import { H, observedTrail, type ObservedTrail, TOTAL } from "./trail-fixture.js";

const CORE = readFileSync("policies/hanzo-core-policy.yaml", "utf8");
const OPS = readFileSync("policies/production-access.yaml", "utf8");
// The candidate: chat may reach PostgreSQL now, iam loses Redis, developers may write to postgres.
const CANDIDATE_CORE = CORE.replace(
  "    # Chat can reach Gateway only (no direct DB access)",
  `    - from: {spiffe: "${H}chat"}\n      to: [{spiffe: "${H}postgres", ports: [5432]}]\n    # Chat can reach Gateway only (no direct DB access)`,
).replace(`        - spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/redis"\n          ports: [6379]\n`, "");
const CANDIDATE_OPS = OPS.replace("        - service: chat\n          actions: [logs, metrics]", "        - service: chat\n          actions: [logs, metrics]\n        - service: postgres\n          actions: [write]");

let t: ObservedTrail;
let since: string;
beforeAll(async () => {
  since = new Date(Date.now() - 60_000).toISOString();
  t = await observedTrail();
});
afterAll(async () => t?.dispose());

describe("replay over the engine's own observe-mode trail", () => {
  it("the trail holds what the engine decided: would-be denials not enforced", async () => {
    const rows = await t.audit.query`SELECT count(*)::int AS n, count(*) FILTER (WHERE decision = 'DENY' AND NOT enforced)::int AS observed FROM zt_audit.decisions`;
    expect(rows[0]).toEqual({ n: TOTAL, observed: 30 + 20 + 5 + 3 });
  });

  it("zt replay --candidate: each changed flow once, with count, first/last seen and sample ids", async () => {
    const dir = tempTree({ "core.yaml": CANDIDATE_CORE, "ops.yaml": CANDIDATE_OPS });
    const r = await ztAsync(["replay", "--candidate", dir, "--dsn", t.dsn, "--since", since, "--format", "json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.records).toEqual({ read: TOTAL, replayed: TOTAL, changed: 30 + 10 + 3, skipped: { agent: 0, engine_failure: 0 } });
    expect(rep.service.deny_to_allow).toHaveLength(1);
    const chat = rep.service.deny_to_allow[0];
    expect(chat).toMatchObject({ source: H + "chat", destination: H + "postgres", port: 5432, count: 30, candidate: { rule: "hanzo-core-policy/rule-3", reason: "allowed_by_rule" } });
    expect(chat.sample_decision_ids.length).toBeGreaterThanOrEqual(1);
    expect(chat.sample_decision_ids.length).toBeLessThanOrEqual(3);
    for (const id of chat.sample_decision_ids) expect(t.ids.get("chat-postgres")).toContain(id);
    expect(Date.parse(chat.first_seen)).toBeLessThanOrEqual(Date.parse(chat.last_seen));
    expect(chat.first_seen).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    expect(rep.service.allow_to_deny).toEqual([expect.objectContaining({ source: H + "iam", destination: H + "redis", port: 6379, count: 10, candidate: { rule: null, reason: "default_deny" } })]);
    expect(rep.operator.deny_to_allow).toEqual([expect.objectContaining({ roles: ["developer"], service: "postgres", action: "write", count: 3 })]);
    expect(rep.operator.allow_to_deny).toEqual([]);
    const loaded = loadPolicyTexts([{ file: "a", text: CANDIDATE_CORE }, { file: "b", text: CANDIDATE_OPS }]);
    if (!loaded.ok) throw new Error("candidate does not load");
    expect(rep.candidate_version).toBe(compilePolicySet(loaded.set).version);
  });

  it("text output and progress; --destination narrows the window", async () => {
    const dir = tempTree({ "core.yaml": CANDIDATE_CORE, "ops.yaml": CANDIDATE_OPS });
    const r = await ztAsync(["replay", "--candidate", dir, "--dsn", t.dsn, "--since", since, "--destination", `${H}postgres`, "--progress"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${70} records read, 70 replayed, 30 would be decided differently`);
    expect(r.out).toContain(`service requests, DENY -> ALLOW (1 flow, 30 records)\n  ${H}chat -> ${H}postgres:5432\n    30 records, `);
    expect(r.out).toContain("candidate: allowed_by_rule (hanzo-core-policy/rule-3)");
    expect(r.out).not.toContain("redis");
    expect(r.err).toMatch(/zt replay: 70 records, 100% of the window, [\d,]+ records\/s/);
    const same = await ztAsync(["replay", "--candidate", "policies", "--dsn", t.dsn, "--since", since]);
    expect(same.code).toBe(0);
    expect(same.out).toContain("no decision in the window would change");
  });

  it("chunks of about seven records (many time slices) give the same report as large ones", async () => {
    const rt = await PolicyRuntime.load(compilePolicySet(await seedSet()).wasm);
    const w = { since: new Date(since), until: new Date(Date.now() + 1000), destination: null };
    const sql = openTrailConnection(t.dsn, "test-replay");
    const small = await replay(sql, w, rt, { pageSize: 7 });
    const large = await replay(sql, w, rt, { pageSize: 200_000 });
    await sql.end();
    expect(small.records).toEqual(large.records);
    expect(small.records.read).toBe(TOTAL);
    // Samples are two ids per flow per chunk, so they depend on the chunks; everything else may not.
    const comparable = (r: typeof small) => JSON.parse(JSON.stringify({ ...r, duration_ms: 0, records_per_s: 0 }, (k, v) => (k === "sample_decision_ids" ? undefined : v)));
    expect(comparable(small)).toEqual(comparable(large));
  });

  it("equals deciding every record one by one (the naive replay) with the candidate's module", async () => {
    const loaded = loadPolicyTexts([{ file: "a", text: CANDIDATE_CORE }, { file: "b", text: CANDIDATE_OPS }]);
    if (!loaded.ok) throw new Error("candidate does not load");
    const rt = await PolicyRuntime.load(compilePolicySet(loaded.set).wasm);
    const rows = await t.audit.query<Array<{ decision: string; src: string | null; dst: string | null; port: number | null; roles: string | null; mfa: boolean | null; service: string | null; action: string | null; ts: Date }>>`
      SELECT decision, source_spiffe_id AS src, dest_spiffe_id AS dst, dest_port AS port, to_json(operator_roles)::text AS roles, operator_mfa AS mfa, target_service AS service, target_action AS action, ts
        FROM zt_audit.decisions ORDER BY ts, decision_id`;
    const naive = new Map<string, { count: number; first: number; last: number }>();
    for (const r of rows) {
      const v = r.src !== null ? rt.evaluateService({ source: r.src, destination: r.dst!, port: r.port! }) : rt.evaluateOperator({ roles: JSON.parse(r.roles!) as string[], mfa: r.mfa!, incidentActive: false, service: r.service!, action: r.action! });
      if (v.allow === (r.decision === "ALLOW")) continue;
      const key = `${r.decision === "ALLOW" ? "allow_to_deny" : "deny_to_allow"} ${r.src ?? r.roles} ${r.dst ?? r.service} ${r.port ?? r.action}`;
      const e = naive.get(key) ?? { count: 0, first: r.ts.getTime(), last: 0 };
      e.count++;
      e.last = r.ts.getTime();
      naive.set(key, e);
    }
    const sql = openTrailConnection(t.dsn, "test-replay");
    const rep = await replay(sql, { since: new Date(since), until: new Date(Date.now() + 1000), destination: null }, rt, { pageSize: 11 });
    await sql.end();
    const got = new Map<string, { count: number; first: number; last: number }>();
    for (const dir of ["allow_to_deny", "deny_to_allow"] as const) {
      for (const f of rep.service[dir]) got.set(`${dir} ${f.source} ${f.destination} ${f.port}`, { count: f.count, first: Date.parse(f.first_seen), last: Date.parse(f.last_seen) });
      for (const f of rep.operator[dir]) got.set(`${dir} ${JSON.stringify(f.roles)} ${f.service} ${f.action}`, { count: f.count, first: Date.parse(f.first_seen), last: Date.parse(f.last_seen) });
    }
    expect(got).toEqual(naive);
    expect(rep.records.changed).toBe([...naive.values()].reduce((n, e) => n + e.count, 0));
  });

  it("bad input: an empty window, a bad time, a candidate that does not compile, no database", async () => {
    const empty = await ztAsync(["replay", "--candidate", "policies", "--dsn", t.dsn, "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"]);
    expect(empty.code).toBe(2);
    expect(empty.err).toContain("no audit records in the window 2020-01-01T00:00:00.000Z .. 2020-01-02T00:00:00.000Z");
    const badTime = await ztAsync(["replay", "--candidate", "policies", "--dsn", t.dsn, "--since", "yesterday"]);
    expect(badTime.code).toBe(2);
    expect(badTime.err).toContain('--since: must be an RFC 3339 timestamp');
    const reversed = await ztAsync(["replay", "--candidate", "policies", "--dsn", t.dsn, "--since", "1h", "--until", "2h"]);
    expect(reversed.code).toBe(2);
    expect(reversed.err).toContain("--since: must be before --until");
    const broken = tempTree({ "core.yaml": CORE.replace("ports: [5432]", "ports: [70000]") });
    const bad = await ztAsync(["replay", "--candidate", broken, "--dsn", t.dsn]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/core\.yaml:\d+:\d+: .*port 70000 is out of range/);
    const noDb = await ztAsync(["replay", "--candidate", "policies", "--data-dir", tempTree({})]);
    expect(noDb.code).toBe(2);
    expect(noDb.err).toContain("no ZT_AUDIT_DSN (or --dsn) and no embedded audit trail");
    const noCand = await ztAsync(["replay", "--dsn", t.dsn]);
    expect(noCand.code).toBe(2);
    expect(noCand.err).toContain("--candidate is required");
    const badDest = await ztAsync(["replay", "--candidate", "policies", "--dsn", t.dsn, "--destination", "postgres"]);
    expect(badDest.code).toBe(2);
    expect(badDest.err).toContain('--destination: invalid SPIFFE ID "postgres"');
  });
});

describe("POST /v1/replay", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field
  const post = (body: unknown, token: string | null = TOKEN) => call<Record<string, any>>(t.engine.url, "POST", "/v1/replay", { body, token });

  it("replays the window with a candidate overlaying the active policies", async () => {
    const r = await post({ candidate: CANDIDATE_CORE, since });
    expect(r.status).toBe(200);
    expect(r.body.records.changed).toBe(40);
    expect(r.body.service.deny_to_allow[0]).toMatchObject({ source: H + "chat", count: 30 });
    expect(r.body.operator).toEqual({ allow_to_deny: [], deny_to_allow: [] });
    // Again and again: each replay's connection is its own and is closed after it.
    for (let i = 0; i < 4; i++) expect((await post({ candidate: CANDIDATE_CORE, since })).body.records.changed).toBe(40);
  });

  it("bad input: 400 with the JSON path, 422 for a candidate that does not validate, 401 without admin", async () => {
    const cases: Array<[unknown, string]> = [
      [{ since }, "$.candidate"],
      [{ candidate: CORE, since: "last week" }, "$.since"],
      [{ candidate: CORE, until: "2020-01-01T00:00:00Z" }, "$.since"],
      [{ candidate: CORE, destination: "spiffe://A/x" }, "$.destination"],
      [{ candidate: CORE, max_flows: 0 }, "$.max_flows"],
      [{ candidate: CORE, extra: 1 }, "$.extra"],
      [[], "$"],
    ];
    for (const [body, path] of cases) {
      const r = await post(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.path).toBe(path);
    }
    const notJson = await call<Record<string, { path: string; code: string }>>(t.engine.url, "POST", "/v1/replay", { raw: "{", token: TOKEN, headers: { "content-type": "application/json" } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toMatchObject({ path: "$", code: "invalid_json" });
    // Not declared JSON: 415 before the body is read (a cross-origin form post is no replay request).
    const notDeclared = await call<Record<string, { code: string }>>(t.engine.url, "POST", "/v1/replay", { raw: JSON.stringify({ candidate: CORE }), token: TOKEN, headers: { "content-type": "text/plain" } });
    expect(notDeclared.status).toBe(415);
    expect(notDeclared.body.error!.code).toBe("unsupported_media_type");
    const empty = await post({ candidate: CORE, since: "2020-01-01T00:00:00Z", until: "2020-01-02T00:00:00Z" });
    expect(empty.status).toBe(400);
    expect(empty.body.error.code).toBe("no_records");
    const invalid = await post({ candidate: CORE.replace("ports: [5432]", "ports: [0]") });
    expect(invalid.status).toBe(422);
    expect((await post({ candidate: CORE }, null)).status).toBe(401);
  });
});
