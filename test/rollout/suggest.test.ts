// zt suggest and GET /v1/suggest over a trail the engine wrote itself in observe mode (real
// embedded PostgreSQL): the suggestion is YAML `zt check` accepts; replaying the window with it
// leaves no would-be denial of observed service traffic and allows nothing it does not name;
// bad input is a clear error with its exit code or 400.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compilePolicySet } from "../../compiler/compile.js";
import { loadPolicyTexts } from "../../compiler/load.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { call, TOKEN } from "../http/harness.js";
import { tempTree, ztAsync } from "./cli.js";
import { H, observedTrail, type ObservedTrail, TOTAL } from "./trail-fixture.js";

let t: ObservedTrail;
let since: string;
/** Service records of the window that were DENY (observe mode: not enforced). */
let serviceDenials: number;
beforeAll(async () => {
  since = new Date(Date.now() - 60_000).toISOString();
  t = await observedTrail();
  const rows = await t.audit.query<Array<{ denied: number }>>`
    SELECT count(*) FILTER (WHERE decision = 'DENY')::int AS denied FROM zt_audit.decisions WHERE source_spiffe_id IS NOT NULL`;
  serviceDenials = rows[0]!.denied;
});
afterAll(async () => t?.dispose());

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field
async function replayWith(candidate: string, replace: boolean): Promise<Record<string, any>> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const r = await call<Record<string, any>>(t.engine.url, "POST", "/v1/replay", { body: { candidate, replace, since }, token: TOKEN });
  expect(r.status, r.text).toBe(200);
  return r.body;
}

describe("zt suggest over the engine's own observe-mode trail", () => {
  it("the would-be denials become the smallest policy; zt check accepts it; replayed with the active policies, no observed service request is denied", async () => {
    expect(serviceDenials).toBe(30 + 20 + 5);
    const r = await ztAsync(["suggest", "--dsn", t.dsn, "--since", since, "--name", "observed-denials"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const yaml = r.out;
    expect(yaml).toContain("# Suggested by zt suggest: allows exactly the 3 observed flows (source, destination, port).");
    expect(yaml).toContain("observe mode's would-be denials");
    // chat -> postgres:5432 (default_deny), newsvc -> gateway:4000 and :4001 (undeclared_service): one range.
    expect(yaml).toContain(`    # 30 decisions observed from ${H}chat\n    - from:\n        spiffe: ${H}chat\n      to:\n        # 30 decisions, `);
    expect(yaml).toMatch(new RegExp(`spiffe: ${H}newsvc\\n      to:\\n        # 25 decisions, [^\\n]*\\n        - spiffe: ${H}gateway\\n          ports:\\n            - 4000-4001\\n`));
    const dir = tempTree({ "suggested.yaml": yaml });
    const check = await ztAsync(["check", dir]);
    expect(check.err).toBe("");
    expect(check.code).toBe(0);
    // The window replayed with the active policies plus the suggestion: every observed denial is
    // now allowed, nothing allowed before changes.
    const rep = await replayWith(yaml, false);
    expect(rep.service.allow_to_deny).toEqual([]);
    const flipped = rep.service.deny_to_allow.reduce((n: number, f: { count: number }) => n + f.count, 0);
    expect(flipped).toBe(serviceDenials);
    expect(rep.service.deny_to_allow.map((f: { source: string; port: number }) => `${f.source}:${f.port}`).sort()).toEqual([`${H}chat:5432`, `${H}newsvc:4000`, `${H}newsvc:4001`]);
  });

  it("--all: the suggestion alone allows every observed service request and nothing else", async () => {
    const r = await ztAsync(["suggest", "--dsn", t.dsn, "--since", since, "--all", "--format", "json"]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    // records: every record the window holds (operator requests are read, and name no flow).
    expect(s).toMatchObject({ flows: 6, rules: 4, records: TOTAL, denied_by_rule: [], generalized: [] });
    const rep = await replayWith(s.yaml, true);
    expect(rep.service.allow_to_deny).toEqual([]);
    expect(rep.service.deny_to_allow.reduce((n: number, f: { count: number }) => n + f.count, 0)).toBe(serviceDenials);
    const loaded = loadPolicyTexts([{ file: "suggested.yaml", text: s.yaml }]);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const rt = await PolicyRuntime.load(compilePolicySet(loaded.set).wasm);
    const seen = new Set(["gateway postgres 5432", "chat postgres 5432", "newsvc gateway 4000", "newsvc gateway 4001", "iam redis 6379", "chat gateway 4000"]);
    const names = ["gateway", "postgres", "chat", "newsvc", "iam", "redis", "other"];
    for (const a of names) for (const b of names) for (const p of [4000, 4001, 4002, 5432, 6379]) {
      expect(rt.evaluateService({ source: H + a, destination: H + b, port: p }).allow, `${a} -> ${b}:${p}`).toBe(seen.has(`${a} ${b} ${p}`));
    }
  });

  it("--generalize namespace says so in a comment; --destination narrows the window", async () => {
    const r = await ztAsync(["suggest", "--dsn", t.dsn, "--since", since, "--generalize", "namespace", "--destination", `${H}gateway`]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`spiffe: ${H}*\n`);
    expect(r.out).toContain("# generalised (--generalize namespace): stands for the observed service accounts newsvc; it also allows any other service account of that namespace");
    expect(r.out).not.toContain("postgres");
    expect((await ztAsync(["check", tempTree({ "s.yaml": r.out })])).code).toBe(0);
  });

  it("bad input: an empty window, a bad option, no database (exit 2)", async () => {
    const empty = await ztAsync(["suggest", "--dsn", t.dsn, "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z"]);
    expect(empty.code).toBe(2);
    expect(empty.err).toContain("no audit records in the window 2020-01-01T00:00:00.000Z .. 2020-01-02T00:00:00.000Z");
    const gen = await ztAsync(["suggest", "--dsn", t.dsn, "--generalize", "cluster"]);
    expect(gen.code).toBe(2);
    expect(gen.err).toContain('--generalize: must be "none" or "namespace", got "cluster"');
    const name = await ztAsync(["suggest", "--dsn", t.dsn, "--name", "Not A Name"]);
    expect(name.code).toBe(2);
    expect(name.err).toContain('--name: "Not A Name" is not a policy name');
    const noDb = await ztAsync(["suggest", "--data-dir", tempTree({})]);
    expect(noDb.code).toBe(2);
    expect(noDb.err).toContain("no ZT_AUDIT_DSN (or --dsn) and no embedded audit trail");
  });
});

describe("GET /v1/suggest", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const get = (query: string, token: string | null = TOKEN) => call<Record<string, any>>(t.engine.url, "GET", `/v1/suggest?${query}`, { token });

  it("answers the suggestion as JSON, or as YAML with format=yaml", async () => {
    const r = await get(`since=${encodeURIComponent(since)}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ flows: 3, rules: 2, records: serviceDenials });
    expect(r.body.yaml).toContain(`spiffe: ${H}newsvc`);
    const y = await call(t.engine.url, "GET", `/v1/suggest?since=${encodeURIComponent(since)}&format=yaml&mode=all&name=all-traffic`, { token: TOKEN });
    expect(y.status).toBe(200);
    expect(y.headers.get("content-type")).toMatch(/^application\/yaml/);
    expect(y.text).toContain("name: all-traffic");
    expect((await ztAsync(["check", tempTree({ "s.yaml": y.text })])).code).toBe(0);
  });

  it("bad input: 400 with the parameter's path, no_records for an empty window, 401 without admin", async () => {
    for (const [q, path] of [
      ["since=yesterday", "query.since"],
      ["mode=some", "query.mode"],
      ["generalize=cluster", "query.generalize"],
      ["name=A", "query.name"],
      ["format=xml", "query.format"],
      ["destination=postgres", "query.destination"],
      ["extra=1", "query.extra"],
    ] as const) {
      const r = await get(q);
      expect(r.status, q).toBe(400);
      expect(r.body.error.path).toBe(path);
    }
    const empty = await get("since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z");
    expect(empty.status).toBe(400);
    expect(empty.body.error.code).toBe("no_records");
    expect((await get("", null)).status).toBe(401);
  });
});
