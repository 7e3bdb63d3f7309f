// zt diff as users run it: paths and git revisions, text and JSON, errors with exit codes;
// and POST /v1/diff against the active policies.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rolloutExtension } from "../../host/rollout/extension.js";
import { call, startTestEngine, type TestEngine, TOKEN } from "../http/harness.js";
import { requireProgram } from "../support/programs.js";
import { tempTree, zt } from "./cli.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";
const CORE = readFileSync("policies/hanzo-core-policy.yaml", "utf8");
const OPS = readFileSync("policies/production-access.yaml", "utf8");

// Everyone in the namespace loses the database, except through the gateway; chat gets a port.
const LOCKDOWN = `${CORE.replace("ports: [4000]", "ports: [4000, 4001]")}
---
apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: lockdown
spec:
  rules:
    - name: no-db
      action: DENY
      from: {spiffe: "${H}*"}
      to: [{spiffe: "${H}postgres", ports: [5432]}]
  rollout:
    - {destination: "${H}postgres", mode: enforce}
`;

describe("zt diff", () => {
  it("paths: each change once, by direction, with a witness; JSON has every class", () => {
    const dir = tempTree({ "core.yaml": LOCKDOWN, "ops.yaml": OPS.replace("actions: [logs, metrics]\n\n", "actions: [logs]\n\n") });
    const r = zt(["diff", "policies", dir]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`zt diff policies -> ${dir}\n`);
    expect(r.out).toContain(`service requests, ALLOW -> DENY (2 classes)
  - source:      ${H}gateway
    destination: ${H}postgres
    ports:       5432
    e.g.         ${H}gateway -> ${H}postgres:5432
  - source:      ${H}iam
    destination: ${H}postgres
    ports:       5432
    e.g.         ${H}iam -> ${H}postgres:5432
`);
    expect(r.out).toContain(`service requests, DENY -> ALLOW (1 class)
  - source:      ${H}chat
    destination: ${H}gateway
    ports:       4001
`);
    // sre loses metrics on every service; with developer as well, chat and gateway stay allowed.
    expect(r.out).toContain(`operator requests, ALLOW -> DENY (2 classes)
  - roles:   any of sre, none of developer
    service: one of chat, gateway; action: metrics; mfa: either; incident active: either
    e.g.     roles [sre] metrics on chat
  - roles:   any of sre
    service: any but chat, gateway; action: metrics; mfa: either; incident active: either
    e.g.     roles [sre] metrics on other
`);
    expect(r.out).toContain(`enforcement (observe/enforce per destination) (1 class)
  - destination: ${H}postgres
    mode:        engine default -> enforce
`);
    const j = zt(["diff", "policies", dir, "--format", "json"]);
    expect(j.code).toBe(0);
    const d = JSON.parse(j.out);
    expect(d.identical).toBe(false);
    expect(d.service.allow_to_deny.map((c: { source: { pattern: string } }) => c.source.pattern)).toEqual([`${H}gateway`, `${H}iam`]);
    expect(d.service.deny_to_allow[0]).toEqual({ source: { pattern: `${H}chat`, except: [] }, destination: { pattern: `${H}gateway`, except: [] }, ports: [{ lo: 4001, hi: 4001 }], witness: { source: `${H}chat`, destination: `${H}gateway`, port: 4001 } });
    expect(d.operator.allow_to_deny).toHaveLength(2);
    expect(d.agent).toEqual({ allow_to_deny: [], deny_to_allow: [] });
  });

  it("a wildcard: the class is the pattern minus what stays allowed, in the policy language's own syntax", () => {
    const dir = tempTree({
      "core.yaml": `${CORE}\n---\napiVersion: zt.hanzo.ai/v1\nkind: ServiceAccessPolicy\nmetadata: {name: metrics}\nspec:\n  rules:\n    - from: {spiffe: "spiffe://hanzo.ai/hanzo-k8s/monitoring/*"}\n      to: [{spiffe: "spiffe://hanzo.ai/hanzo-k8s/**", ports: ["9090-9100"]}]\n`,
    });
    const d = JSON.parse(zt(["diff", "policies", dir, "--format", "json"]).out);
    expect(d.service.allow_to_deny).toEqual([]);
    expect(d.service.deny_to_allow).toEqual([
      {
        source: { pattern: "spiffe://hanzo.ai/hanzo-k8s/monitoring/*", except: [] },
        destination: { pattern: "spiffe://hanzo.ai/hanzo-k8s/**", except: [] },
        ports: [{ lo: 9090, hi: 9100 }],
        witness: { source: "spiffe://hanzo.ai/hanzo-k8s/monitoring/other", destination: "spiffe://hanzo.ai/hanzo-k8s/other", port: 9090 },
      },
    ]);
  });

  it("identical sets say so", () => {
    const r = zt(["diff", "policies", tempTree({ "a.yaml": CORE, "b.yaml": OPS })]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("no request is decided differently; no enforcement setting changes");
  });

  it("git revisions: REV:PATH and a bare REV for the other operand's path; the work tree is not touched", () => {
    requireProgram("git");
    const repo = tempTree({ "policies/core.yaml": CORE, "policies/ops.yaml": OPS, "policies/.hidden.yaml": "not: yaml: [" });
    const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", ...args], { cwd: repo, encoding: "utf8" });
    git("init", "-q", "-b", "main");
    git("add", "-A");
    git("commit", "-qm", "one");
    writeFileSync(join(repo, "policies/core.yaml"), CORE.replace("ports: [6379]", "ports: [6380]"));
    git("commit", "-qam", "two");
    writeFileSync(join(repo, "policies/core.yaml"), CORE.replace("ports: [6379]", "ports: [6381]"));
    const bare = zt(["diff", "HEAD~1", "policies", "--format", "json"], { cwd: repo });
    expect(bare.err).toBe("");
    const b = JSON.parse(bare.out);
    expect(b.old).toBe("HEAD~1:policies");
    expect(b.service.allow_to_deny[0].ports).toEqual([{ lo: 6379, hi: 6379 }]);
    expect(b.service.deny_to_allow[0].ports).toEqual([{ lo: 6381, hi: 6381 }]);
    const revs = JSON.parse(zt(["diff", "main~1:policies", "main:policies", "--format", "json"], { cwd: join(repo, "policies") }).out);
    expect(revs.service.deny_to_allow[0].ports).toEqual([{ lo: 6380, hi: 6380 }]);
    expect(git("status", "--porcelain")).toBe(" M policies/core.yaml\n");
  });

  it("errors: unknown revision or path exit 2, policies that do not validate exit 1 with file:line:col", () => {
    requireProgram("git");
    const repo = tempTree({ "policies/core.yaml": CORE });
    execFileSync("git", ["init", "-q"], { cwd: repo });
    execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "empty"], { cwd: repo });
    const unknown = zt(["diff", "nosuchrev:policies", "policies"], { cwd: repo });
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('unknown git revision "nosuchrev"');
    const bareUnknown = zt(["diff", "nosuchrev", "policies"], { cwd: repo });
    expect(bareUnknown.code).toBe(2);
    expect(bareUnknown.err).toContain('"nosuchrev" is neither a file or directory nor a git revision');
    const nothing = zt(["diff", "HEAD:policies", "policies"], { cwd: repo });
    expect(nothing.code).toBe(2);
    expect(nothing.err).toContain("HEAD:policies: no policy files");
    const neither = zt(["diff", "/no/such/dir", "policies"]);
    expect(neither.code).toBe(2);
    expect(neither.err).toContain('"/no/such/dir" is neither a file or directory nor a git revision');
    const bad = tempTree({ "core.yaml": CORE.replace("ports: [5432]", "ports: [0]") });
    const r = zt(["diff", "policies", bad]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`${join(bad, "core.yaml")}:\\d+:\\d+: spec\\.rules\\[0\\]\\.to\\[0\\]\\.ports\\[0\\]: port 0 is out of range`));
    expect(zt(["diff", "policies"]).code).toBe(2);
    expect(zt(["diff", "policies", "policies", "--format", "yaml"]).code).toBe(2);
  });
});

describe("POST /v1/diff", () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await startTestEngine({ engine: { extensions: [rolloutExtension()] } });
  });
  afterAll(async () => engine.dispose());

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field
  const post = (raw: string, query = "", token: string | null = TOKEN) => call<Record<string, any>>(engine.url, "POST", `/v1/diff${query}`, { raw, token, headers: { "content-type": "application/yaml" } });

  it("a candidate overlays the active policies; the answer names both versions", async () => {
    const r = await post(CORE.replace("ports: [4000]", "ports: [4000, 4001]"));
    expect(r.status).toBe(200);
    expect(r.body.old.version).toBe(engine.store.current()!.version);
    expect(r.body.new.version).toMatch(/^sha256:/);
    expect(r.body.service.deny_to_allow).toHaveLength(1);
    expect(r.body.operator).toEqual({ allow_to_deny: [], deny_to_allow: [] });
  });

  it("?replace=true: the body is the whole new set (the operator policy is gone)", async () => {
    const r = await post(CORE, "?replace=true");
    expect(r.status).toBe(200);
    expect(r.body.service).toEqual({ allow_to_deny: [], deny_to_allow: [] });
    expect(r.body.operator.allow_to_deny.length).toBeGreaterThan(0);
    expect(r.body.operator.deny_to_allow).toEqual([]);
  });

  it("bad input: 422 with line:col, 400 for an empty body or a bad query, 401 without the admin token", async () => {
    const bad = await post(CORE.replace("ports: [5432]", "ports: [99999]"));
    expect(bad.status).toBe(422);
    expect(bad.body.error.errors[0]).toMatch(/^\d+:\d+: .*port 99999 is out of range/);
    expect((await post("")).status).toBe(400);
    expect((await post(CORE, "?replace=yes")).body.error.path).toBe("query.replace");
    expect((await post(CORE, "", null)).status).toBe(401);
  });
});
