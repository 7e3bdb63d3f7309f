// What each identity rule admits (createCallerAuth().permit), for every kind of caller, with
// the reader trust domains and the metrics setting: the semantics the route table relies on.
import { describe, expect, it } from "vitest";
import { type Caller, createCallerAuth, IDENTITY_RULES, type IdentityRule, type MetricsAccess } from "../../host/identity/caller.js";
import type { PeerVerifier } from "../../host/identity/peer.js";

const ADMIN_ID = "spiffe://hanzo.ai/ns/zt/sa/admin";

function caller(kind: "own-domain" | "federated" | "admin-id" | "token" | "plaintext" | "plaintext-token" | "none"): Caller {
  const base = { adminToken: false, remoteAddress: "10.0.0.7" };
  switch (kind) {
    case "own-domain":
      return { ...base, transport: "mtls", spiffeId: "spiffe://hanzo.ai/ns/a/sa/b", trustDomain: "hanzo.ai" };
    case "federated":
      return { ...base, transport: "mtls", spiffeId: "spiffe://partner.org/prod/api", trustDomain: "partner.org" };
    case "admin-id":
      return { ...base, transport: "mtls", spiffeId: ADMIN_ID, trustDomain: "hanzo.ai" };
    case "token":
      return { ...base, transport: "mtls", spiffeId: "spiffe://partner.org/prod/api", trustDomain: "partner.org", adminToken: true };
    case "plaintext":
      return { ...base, transport: "plaintext", spiffeId: null, trustDomain: null };
    case "plaintext-token":
      return { ...base, transport: "plaintext", spiffeId: null, trustDomain: null, adminToken: true };
    case "none":
      return { ...base, transport: "none", spiffeId: null, trustDomain: null };
  }
}

function auth(metricsAccess: MetricsAccess, readers: string[]) {
  return createCallerAuth({
    peer: {} as PeerVerifier,
    adminToken: "t".repeat(32),
    adminSpiffeIds: new Set([ADMIN_ID]),
    trustedEvaluators: new Set(),
    readerTrustDomains: () => new Set(readers),
    metricsAccess,
  });
}

// pass, or the refusal code
const TABLE: Array<[Parameters<typeof caller>[0], Record<IdentityRule, string>]> = [
  ["own-domain", { svid: "pass", reader: "pass", metrics: "pass", admin: "unauthenticated", own: "pass" }],
  ["federated", { svid: "pass", reader: "trust_domain_not_reader", metrics: "trust_domain_not_reader", admin: "unauthenticated", own: "pass" }],
  ["admin-id", { svid: "pass", reader: "pass", metrics: "pass", admin: "pass", own: "pass" }],
  ["token", { svid: "pass", reader: "pass", metrics: "pass", admin: "pass", own: "pass" }],
  ["plaintext", { svid: "pass", reader: "pass", metrics: "pass", admin: "unauthenticated", own: "pass" }],
  ["plaintext-token", { svid: "pass", reader: "pass", metrics: "pass", admin: "pass", own: "pass" }],
  ["none", { svid: "invalid_client_svid", reader: "invalid_client_svid", metrics: "invalid_client_svid", admin: "invalid_client_svid", own: "pass" }],
];

describe("identity rules", () => {
  it("admit what docs/identity.md says, caller by caller (readers: hanzo.ai; metrics: reader)", () => {
    const a = auth("reader", ["hanzo.ai"]);
    for (const [kind, want] of TABLE) {
      for (const rule of IDENTITY_RULES) {
        const r = a.permit(caller(kind), rule);
        expect(r.ok ? "pass" : r.code, `${kind} / ${rule}`).toBe(want[rule]);
      }
    }
  });

  it("follow ZT_METRICS_ACCESS for metrics", () => {
    const fed = caller("federated");
    expect(auth("svid", ["hanzo.ai"]).permit(fed, "metrics").ok).toBe(true);
    expect(auth("admin", ["hanzo.ai"]).permit(caller("own-domain"), "metrics")).toMatchObject({ ok: false, status: 401, code: "unauthenticated" });
    expect(auth("admin", ["hanzo.ai"]).permit(caller("admin-id"), "metrics").ok).toBe(true);
  });

  it("read the reader domains as configured (a federated domain may be listed)", () => {
    expect(auth("reader", ["hanzo.ai", "partner.org"]).permit(caller("federated"), "reader").ok).toBe(true);
    expect(auth("reader", []).permit(caller("own-domain"), "reader")).toMatchObject({ ok: false, status: 403 });
  });
});
