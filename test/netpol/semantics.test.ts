// The NetworkPolicy evaluator (semantics.ts) against the Kubernetes documentation's own
// examples, each with what the documentation says it does:
//   https://kubernetes.io/docs/concepts/services-networking/network-policies/ (the example
//   NetworkPolicy, "Behavior of to and from selectors", "Default policies", "Targeting a range
//   of ports") and the labels page's set-based selector example.
// The examples are the documentation's, written here as objects; the expectations are its prose.
import { describe, expect, it } from "vitest";
import type { NetworkPolicy } from "../../compiler/netpol/types.js";
import { admits, type ClusterView, type Endpoint, type External, type Pod, policyTypesOf, selectorMatches } from "./semantics.js";

const C = "c1";
let ip = 0;
function pod(namespace: string, labels: Record<string, string>): Pod {
  ip++;
  return { cluster: C, namespace, labels, ip: `10.1.${Math.floor(ip / 250)}.${(ip % 250) + 1}` };
}
function ext(addr: string): External {
  return { kind: "external", ip: addr };
}

function view(policies: NetworkPolicy[], namespaces: Record<string, Record<string, string>>): ClusterView {
  return { cluster: C, policies, namespaces: new Map(Object.entries(namespaces).map(([name, labels]) => [name, { name, labels }])) };
}

function np(name: string, namespace: string, spec: NetworkPolicy["spec"]): NetworkPolicy {
  return { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}

const NAMESPACES = { default: { "kubernetes.io/metadata.name": "default" }, myproject: { project: "myproject" }, other: {}, alice: { user: "alice" } };

describe("the documentation's example NetworkPolicy (test-network-policy)", () => {
  // The example: role=db pods of "default", ingress on TCP 6379 from an ipBlock with an
  // exception, a namespace selector and a pod selector; egress to 10.0.0.0/24 on TCP 5978.
  const policy = np("test-network-policy", "default", {
    podSelector: { matchLabels: { role: "db" } },
    policyTypes: ["Ingress", "Egress"],
    ingress: [
      {
        from: [{ ipBlock: { cidr: "172.17.0.0/16", except: ["172.17.1.0/24"] } }, { namespaceSelector: { matchLabels: { project: "myproject" } } }, { podSelector: { matchLabels: { role: "frontend" } } }],
        ports: [{ protocol: "TCP", port: 6379 }],
      },
    ],
    egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/24" } }], ports: [{ protocol: "TCP", port: 5978 }] }],
  });
  const v = view([policy], NAMESPACES);
  const db = pod("default", { role: "db" });
  const frontend = pod("default", { role: "frontend" });
  const elsewhere = pod("myproject", { anything: "x" });
  const stranger = pod("other", { role: "frontend" });

  it("1. isolates role=db pods of default for ingress and egress", () => {
    expect(admits(v, stranger, db, 6379)).toBe(false);
    expect(admits(v, db, frontend, 80)).toBe(false);
    // Other pods of the namespace are not selected: they accept and send anything.
    expect(admits(v, stranger, frontend, 80)).toBe(true);
    expect(admits(v, frontend, ext("8.8.8.8"), 53, "UDP")).toBe(true);
  });

  it("2. admits TCP 6379 to them from role=frontend pods of default, any pod of a project=myproject namespace, and 172.17.0.0/16 but 172.17.1.0/24", () => {
    expect(admits(v, frontend, db, 6379)).toBe(true);
    expect(admits(v, elsewhere, db, 6379)).toBe(true);
    expect(admits(v, ext("172.17.0.9"), db, 6379)).toBe(true);
    expect(admits(v, ext("172.17.2.9"), db, 6379)).toBe(true);
    expect(admits(v, ext("172.17.255.255"), db, 6379)).toBe(true);
    expect(admits(v, ext("172.17.1.9"), db, 6379)).toBe(false);
    expect(admits(v, ext("172.18.0.1"), db, 6379)).toBe(false);
    // Only TCP 6379.
    expect(admits(v, frontend, db, 6380)).toBe(false);
    expect(admits(v, frontend, db, 6379, "UDP")).toBe(false);
    // role=frontend pods of another namespace are not the podSelector's (its own namespace only).
    expect(admits(v, stranger, db, 6379)).toBe(false);
  });

  it("3. admits egress from them to 10.0.0.0/24 on TCP 5978 only", () => {
    expect(admits(v, db, ext("10.0.0.7"), 5978)).toBe(true);
    expect(admits(v, db, ext("10.0.1.7"), 5978)).toBe(false);
    expect(admits(v, db, ext("10.0.0.7"), 5979)).toBe(false);
    expect(admits(v, db, ext("10.0.0.7"), 5978, "SCTP")).toBe(false);
  });

  it("both ends must agree: a db pod's egress rule does not open the other pod's ingress", () => {
    const isolated = np("deny-frontend-ingress", "default", { podSelector: { matchLabels: { role: "frontend" } }, policyTypes: ["Ingress"] });
    const v2 = view([policy, isolated], NAMESPACES);
    const opened = np("db-egress-to-frontend", "default", { podSelector: { matchLabels: { role: "db" } }, policyTypes: ["Egress"], egress: [{ to: [{ podSelector: { matchLabels: { role: "frontend" } } }] }] });
    const v3 = view([policy, isolated, opened], NAMESPACES);
    expect(admits(v2, db, frontend, 80)).toBe(false);
    expect(admits(v3, db, frontend, 80)).toBe(false);
    expect(admits(view([policy, opened], NAMESPACES), db, frontend, 80)).toBe(true);
  });
});

describe("behavior of to and from selectors", () => {
  const client = pod("alice", { role: "client" });
  const aliceOther = pod("alice", { role: "server" });
  const localClient = pod("default", { role: "client" });
  const bobClient = pod("other", { role: "client" });
  const target = pod("default", { app: "target" });

  it("one entry with namespaceSelector and podSelector: role=client pods in user=alice namespaces", () => {
    const v = view([np("one", "default", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: { user: "alice" } }, podSelector: { matchLabels: { role: "client" } } }] }] })], NAMESPACES);
    expect(admits(v, client, target, 80)).toBe(true);
    expect(admits(v, aliceOther, target, 80)).toBe(false);
    expect(admits(v, localClient, target, 80)).toBe(false);
    expect(admits(v, bobClient, target, 80)).toBe(false);
  });

  it("two entries: role=client pods of the local namespace, or any pod of a user=alice namespace", () => {
    const v = view([np("two", "default", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: { matchLabels: { user: "alice" } } }, { podSelector: { matchLabels: { role: "client" } } }] }] })], NAMESPACES);
    expect(admits(v, client, target, 80)).toBe(true);
    expect(admits(v, aliceOther, target, 80)).toBe(true);
    expect(admits(v, localClient, target, 80)).toBe(true);
    expect(admits(v, bobClient, target, 80)).toBe(false);
  });
});

describe("default policies", () => {
  const a = pod("default", { app: "a" });
  const b = pod("default", { app: "b" });
  const out = pod("other", { app: "c" });

  it("default deny all ingress: every pod isolated for ingress; egress unchanged", () => {
    const v = view([np("default-deny-ingress", "default", { podSelector: {}, policyTypes: ["Ingress"] })], NAMESPACES);
    expect(admits(v, out, a, 80)).toBe(false);
    expect(admits(v, a, b, 80)).toBe(false);
    expect(admits(v, a, out, 80)).toBe(true);
  });

  it("default allow all ingress: an empty rule admits everything, even next to an isolating policy", () => {
    const deny = np("default-deny-ingress", "default", { podSelector: {}, policyTypes: ["Ingress"] });
    const v = view([deny, np("allow-all-ingress", "default", { podSelector: {}, ingress: [{}], policyTypes: ["Ingress"] })], NAMESPACES);
    expect(admits(v, out, a, 80)).toBe(true);
    expect(admits(v, out, a, 9999, "UDP")).toBe(true);
  });

  it("default deny all egress: every pod isolated for egress; ingress unchanged", () => {
    const v = view([np("default-deny-egress", "default", { podSelector: {}, policyTypes: ["Egress"] })], NAMESPACES);
    expect(admits(v, a, out, 80)).toBe(false);
    expect(admits(v, a, ext("1.1.1.1"), 53, "UDP")).toBe(false);
    expect(admits(v, out, a, 80)).toBe(true);
  });

  it("default allow all egress", () => {
    const v = view([np("default-deny-egress", "default", { podSelector: {}, policyTypes: ["Egress"] }), np("allow-all-egress", "default", { podSelector: {}, egress: [{}], policyTypes: ["Egress"] })], NAMESPACES);
    expect(admits(v, a, out, 80)).toBe(true);
    expect(admits(v, a, ext("1.1.1.1"), 53, "UDP")).toBe(true);
  });

  it("default deny all ingress and egress", () => {
    const v = view([np("default-deny-all", "default", { podSelector: {}, policyTypes: ["Ingress", "Egress"] })], NAMESPACES);
    expect(admits(v, a, b, 80)).toBe(false);
    expect(admits(v, out, a, 80)).toBe(false);
    expect(admits(v, a, out, 80)).toBe(false);
    expect(admits(v, out, pod("other", { app: "d" }), 80)).toBe(true);
  });

  it("allow all egress, deny all ingress (an empty ingress list)", () => {
    const v = view([np("allow-egress-deny-ingress", "default", { podSelector: {}, policyTypes: ["Egress", "Ingress"], egress: [{}], ingress: [] })], NAMESPACES);
    expect(admits(v, a, out, 80)).toBe(true);
    expect(admits(v, out, a, 80)).toBe(false);
  });

  it("a pod cannot block access to itself", () => {
    const v = view([np("default-deny-all", "default", { podSelector: {}, policyTypes: ["Ingress", "Egress"] })], NAMESPACES);
    expect(admits(v, a, a, 80)).toBe(true);
  });
});

describe("targeting a range of ports (endPort)", () => {
  it("admits ports 32000 to 32768 inclusive to 10.0.0.0/24, nothing else", () => {
    const v = view([np("multi-port-egress", "default", { podSelector: { matchLabels: { role: "db" } }, policyTypes: ["Egress"], egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/24" } }], ports: [{ protocol: "TCP", port: 32000, endPort: 32768 }] }] })], NAMESPACES);
    const db = pod("default", { role: "db" });
    for (const [port, ok] of [[31999, false], [32000, true], [32400, true], [32768, true], [32769, false]] as const) expect(admits(v, db, ext("10.0.0.1"), port), String(port)).toBe(ok);
    expect(admits(v, db, ext("10.0.1.1"), 32000)).toBe(false);
  });
});

describe("fields the documentation defines by default", () => {
  it("policyTypes: Ingress always, Egress when there are egress rules", () => {
    expect(policyTypesOf({ podSelector: {} })).toEqual(["Ingress"]);
    expect(policyTypesOf({ podSelector: {}, egress: [{}] })).toEqual(["Ingress", "Egress"]);
    expect(policyTypesOf({ podSelector: {}, egress: [] })).toEqual(["Ingress"]);
    expect(policyTypesOf({ podSelector: {}, policyTypes: ["Egress"] })).toEqual(["Egress"]);
  });

  it("a port entry without protocol is TCP; without port, every port of its protocol", () => {
    const dst = pod("default", { app: "dst" });
    const src = pod("other", {});
    const v = view([np("p", "default", { podSelector: { matchLabels: { app: "dst" } }, policyTypes: ["Ingress"], ingress: [{ ports: [{ port: 53 }, { protocol: "UDP" }] }] })], NAMESPACES);
    expect(admits(v, src, dst, 53)).toBe(true);
    expect(admits(v, src, dst, 54)).toBe(false);
    expect(admits(v, src, dst, 54, "UDP")).toBe(true);
    expect(admits(v, src, dst, 53, "SCTP")).toBe(false);
  });

  it("named ports are not modelled: refused, not guessed", () => {
    const v = view([np("p", "default", { podSelector: {}, policyTypes: ["Ingress"], ingress: [{ ports: [{ port: "http" }] }] })], NAMESPACES);
    expect(() => admits(v, pod("other", {}), pod("default", {}), 80)).toThrow(/named ports/);
  });
});

describe("label selectors (the labels page)", () => {
  it("set-based: environment notin (frontend) also selects objects without the key", () => {
    const sel = { matchExpressions: [{ key: "environment", operator: "NotIn", values: ["frontend"] }] };
    expect(selectorMatches(sel, { environment: "production" })).toBe(true);
    expect(selectorMatches(sel, {})).toBe(true);
    expect(selectorMatches(sel, { environment: "frontend" })).toBe(false);
  });

  it("equality and set requirements are ANDed; an empty selector matches everything", () => {
    const sel = { matchLabels: { tier: "db" }, matchExpressions: [{ key: "environment", operator: "In", values: ["production", "qa"] }, { key: "partition", operator: "Exists" }] };
    expect(selectorMatches(sel, { tier: "db", environment: "qa", partition: "a" })).toBe(true);
    expect(selectorMatches(sel, { tier: "db", environment: "qa" })).toBe(false);
    expect(selectorMatches(sel, { tier: "web", environment: "qa", partition: "a" })).toBe(false);
    expect(selectorMatches({}, {})).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "partition", operator: "DoesNotExist" }] }, { tier: "db" })).toBe(true);
  });
});

/** Pods of another cluster are seen by address only, through ipBlock. */
describe("endpoints of another cluster", () => {
  it("selectors never name them; an ipBlock does", () => {
    const remote: Endpoint = { cluster: "c2", namespace: "default", labels: { role: "frontend" }, ip: "10.99.0.5" };
    const db = pod("default", { role: "db" });
    const bySelector = view([np("p", "default", { podSelector: { matchLabels: { role: "db" } }, policyTypes: ["Ingress"], ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: "frontend" } } }] }] })], NAMESPACES);
    expect(admits(bySelector, remote, db, 80)).toBe(false);
    const byCidr = view([np("p", "default", { podSelector: { matchLabels: { role: "db" } }, policyTypes: ["Ingress"], ingress: [{ from: [{ ipBlock: { cidr: "10.99.0.0/16" } }] }] })], NAMESPACES);
    expect(admits(byCidr, remote, db, 80)).toBe(true);
  });
});
