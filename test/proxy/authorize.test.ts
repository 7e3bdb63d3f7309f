// authorize/: the proxy's operator requests go through the engine's decision core. Compared with
// POST /v1/evaluate on generated requests (same decision, reason and rule), audited with the
// route in `caller`; refusals before a decision are audited DENYs that observe mode never lets
// through; an audit trail that refuses records makes every decision a DENY.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renameSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../host/common/logger.js";
import { createAuthorizer, lets, type Authorizer } from "../../host/proxy/authorize/operator.js";
import { call, startTestEngine, type TestEngine } from "../http/harness.js";

let e: TestEngine;
let authz: Authorizer;
let observe: TestEngine;

function authorizerFor(engine: TestEngine, mode: "enforce" | "observe"): Authorizer {
  return createAuthorizer({ store: engine.store, sink: engine.sink!, incidents: engine.incidents, metrics: engine.metrics, log: silentLogger, mode, origin: "engine", auditWaitMs: 1000 });
}

beforeAll(async () => {
  e = await startTestEngine();
  authz = authorizerFor(e, "enforce");
  observe = await startTestEngine({ env: { ZT_MODE: "observe" } });
  await e.state.putIncident("INC-7", { description: "db failover" }, "test");
});
afterAll(async () => {
  await e?.dispose();
  await observe?.dispose();
});

describe("operator decisions through the proxy", () => {
  it("decide exactly as POST /v1/evaluate does (generated requests)", async () => {
    const role = fc.constantFrom("sre", "developer", "oncall", "intern");
    const req = fc.record({
      roles: fc.uniqueArray(role, { maxLength: 3 }),
      service: fc.constantFrom("postgres", "redis", "gateway", "chat", "grafana"),
      action: fc.constantFrom("read", "write", "logs", "metrics", "restart"),
      mfa: fc.boolean(),
      incident: fc.constantFrom(null, "INC-7", "INC-404"),
    });
    await fc.assert(
      fc.asyncProperty(req, async (r) => {
        const d = await authz.decide({ subject: "alice@hanzo.ai", roles: r.roles, mfa: r.mfa }, { route: "r", service: r.service, action: r.action }, r.incident, "http", "10.0.0.7");
        const api = await call<Record<string, unknown>>(e.url, "POST", "/v1/evaluate", {
          body: { operator: { subject: "alice@hanzo.ai", roles: r.roles, mfa: r.mfa, incident: r.incident }, target: { service: r.service, action: r.action } },
        });
        expect({ decision: d.decision, reason: d.reason, policy_matched: d.policy_matched, enforced: d.enforced }).toEqual({
          decision: api.body.decision,
          reason: api.body.reason,
          policy_matched: api.body.policy_matched,
          enforced: api.body.enforced,
        });
      }),
      { numRuns: 150 },
    );
  });

  it("the seed's production-access: developer cannot write postgres, sre can, oncall only with MFA and an active incident", async () => {
    const pg = { route: "postgres", service: "postgres", action: "write" };
    const ask = (roles: string[], mfa: boolean, incident: string | null) => authz.decide({ subject: "u@hanzo.ai", roles, mfa }, pg, incident, "tunnel", null);
    expect((await ask(["developer"], true, "INC-7")).reason).toBe("default_deny");
    expect((await ask(["sre"], false, null)).decision).toBe("ALLOW");
    expect((await ask(["oncall"], false, "INC-7")).reason).toBe("condition_failed:requireMFA");
    expect((await ask(["oncall"], true, null)).reason).toBe("condition_failed:requireIncident");
    expect((await ask(["oncall"], true, "INC-404")).reason).toBe("condition_failed:requireIncident");
    expect(await ask(["oncall"], true, "INC-7")).toMatchObject({ decision: "ALLOW", policy_matched: "production-access/rule-3" });
  });

  it("audits each decision with subject, roles, MFA, incident, target and the route in caller", async () => {
    const d = await authz.decide({ subject: "bob@hanzo.ai", roles: ["sre"], mfa: true }, { route: "grafana", service: "gateway", action: "logs" }, "INC-7", "http", "192.0.2.1");
    const rec = e.sink!.records().find((r) => r.decision_id === d.decision_id)!;
    expect(rec).toMatchObject({
      decision: "ALLOW",
      operator: { subject: "bob@hanzo.ai", roles: ["sre"], mfa: true, incident: "INC-7" },
      target: { service: "gateway", action: "logs" },
      caller: "proxy:grafana+http+remote:192.0.2.1",
      enforced: true,
      source: null,
      destination: null,
    });
  });

  it("refusals are audited DENYs with their reason and no verified subject", async () => {
    const d = authz.refuse(null, { route: null, service: "(no-route)", action: "read" }, "proxy_unknown_host", "http", "198.51.100.9");
    expect(d).toMatchObject({ decision: "DENY", enforced: true, reason: "proxy_unknown_host", policy_matched: null });
    const rec = e.sink!.records().find((r) => r.decision_id === d.decision_id)!;
    expect(rec.operator).toEqual({ subject: "anonymous@198.51.100.9", roles: [], mfa: false, incident: null });
    expect(rec.caller).toBe("proxy:(no-route)+http+remote:198.51.100.9");
  });

  it("client-chosen text that the trail could not store is replaced, never refused by the trail", async () => {
    const d = await authz.decide({ subject: "x\u0000y", roles: ["sre"], mfa: false }, { route: "r", service: "postgres", action: "read" }, "INC\uD800", "http", null);
    const rec = e.sink!.records().find((r) => r.decision_id === d.decision_id)!;
    expect(rec.operator).toMatchObject({ subject: "(unstorable)", incident: "(unstorable)" });
  });

  it("observe mode lets a policy DENY through, never a refusal", async () => {
    const o = authorizerFor(observe, "observe");
    const d = await o.decide({ subject: "d@hanzo.ai", roles: ["developer"], mfa: false }, { route: "pg", service: "postgres", action: "write" }, null, "tunnel", null);
    expect(d).toMatchObject({ decision: "DENY", enforced: false });
    expect(lets(d)).toBe(true);
    expect(lets(o.refuse(null, { route: "pg", service: "postgres", action: "write" }, "proxy_unauthenticated", "tunnel", null))).toBe(false);
  });

  it("fails closed when the audit trail refuses the record", async () => {
    // The sink appends to a file in this directory: without it, the sink refuses every record.
    const dir = join(e.dir, "audit");
    renameSync(dir, dir + ".gone");
    try {
      const d = await authz.decide({ subject: "s@hanzo.ai", roles: ["sre"], mfa: false }, { route: "pg", service: "postgres", action: "write" }, null, "tunnel", null);
      expect(d).toMatchObject({ decision: "DENY", reason: "audit_unavailable" });
      expect(lets(d)).toBe(false);
      expect(authz.refuse(null, { route: "pg", service: "postgres", action: "write" }, "proxy_unauthenticated", "tunnel", null).reason).toBe("audit_unavailable");
    } finally {
      renameSync(dir + ".gone", dir);
    }
  });
});
