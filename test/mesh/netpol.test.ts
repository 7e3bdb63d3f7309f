// `zt netpol` with a WireGuardMesh among its inputs: the gateway's NetworkPolicies (UDP with
// the peer gateways only; the tunnel carries only the cross-cluster traffic the ZT policy
// allows), schema-valid, and the peer pod CIDRs taken from the mesh.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { meshFromText } from "../../compiler/mesh/load.js";
import { buildPolicySet } from "../../compiler/load.js";
import { gatewayPolicies } from "../../compiler/netpol/gateway.js";
import { netpolOptions, type NetworkPolicy } from "../../compiler/netpol/types.js";
import { parsePolicyText } from "../../compiler/parse.js";
import { apiServerRules, validateObject } from "../netpol/schema.js";
import { admits, type ClusterView, type Pod } from "../netpol/semantics.js";
import { zt } from "./helpers.js";

const POLICY = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: cross
spec:
  rules:
    - name: gateway-to-validators
      from: {spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway"}
      to: [{spiffe: "spiffe://hanzo.ai/lux-k8s/lux/validator", ports: [9650]}]
    - name: validators-to-gateway
      from: {spiffe: "spiffe://hanzo.ai/lux-k8s/lux/validator"}
      to: [{spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway", ports: [4000]}]
    - name: local-only
      from: {spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/iam"}
      to: [{spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres", ports: [5432]}]
`;

const MESH = (luxEndpoint: string | null): string => `apiVersion: zt.hanzo.ai/v1
kind: WireGuardMesh
metadata: {name: hanzo-lux}
spec:
  meshCIDR: 10.10.0.0/24
  clusters:
    - name: hanzo-k8s
      address: 10.10.0.1
      endpoint: 24.199.76.156:51820
      publicKey: Fr/q0w+6PFuz87qLZfMo0OKQyOg+SAYp5e4nJ2y5rh4=
      keyCreated: "2026-02-23"
      privateKeyFile: /var/run/secrets/zt-wireguard/private-key
      allowedIPs: [10.245.0.0/16]
    - name: lux-k8s
      address: 10.10.0.2
${luxEndpoint === null ? "" : `      endpoint: "${luxEndpoint}"\n`}      publicKey: 6EelM8EpYCM9hgEiPeywe8aRbqlq4eHsgzVQgv6MEWY=
      keyCreated: "2026-02-23"
      privateKeyFile: /var/run/secrets/zt-wireguard/private-key
      allowedIPs: [10.244.0.0/16]
`;

function generate(luxEndpoint: string | null) {
  const p = parsePolicyText(POLICY, "cross.yaml");
  if (!p.ok) throw new Error("policy");
  const set = buildPolicySet(p.policies);
  if (!set.ok) throw new Error("set");
  const m = meshFromText(MESH(luxEndpoint), "mesh.yaml");
  if (!m.ok) throw new Error(JSON.stringify(m.errors));
  return gatewayPolicies(m.mesh, set.set, netpolOptions({ cluster: "hanzo-k8s", trustDomain: "hanzo.ai" }));
}

const pod = (namespace: string, app: string, ip: string): Pod => ({ cluster: "hanzo-k8s", namespace, labels: { app }, ip });
const wgGateway = pod("hanzo", "zt-wireguard-gateway", "10.245.0.9");

function view(policies: NetworkPolicy[]): ClusterView {
  const ns = (name: string) => [name, { name, labels: { "kubernetes.io/metadata.name": name } }] as const;
  return { cluster: "hanzo-k8s", namespaces: new Map([ns("hanzo"), ns("monitoring")]), policies };
}

describe("the WireGuard gateway's NetworkPolicies", () => {
  it("admit WireGuard with the peer gateway's endpoint only", () => {
    const g = generate("24.144.69.101:51820");
    expect(g.warnings).toEqual([]);
    const [ing, eg] = g.objects as [NetworkPolicy, NetworkPolicy];
    expect(ing.metadata).toMatchObject({ name: "zt-wireguard-gateway-ingress", namespace: "hanzo" });
    expect(ing.spec!.podSelector).toEqual({ matchLabels: { app: "zt-wireguard-gateway" } });
    expect(ing.spec!.ingress![0]).toEqual({ from: [{ ipBlock: { cidr: "24.144.69.101/32" } }], ports: [{ protocol: "UDP", port: 51820 }] });
    expect(eg.spec!.egress![0]).toEqual({ to: [{ ipBlock: { cidr: "24.144.69.101/32" } }], ports: [{ protocol: "UDP", port: 51820 }] });
    for (const o of g.objects) {
      expect(() => validateObject(o)).not.toThrow();
      expect(apiServerRules(o)).toEqual([]);
    }
  });

  it("let into the tunnel only the local pods a rule sends to a peer cluster, on its ports", () => {
    const v = view(generate("24.144.69.101:51820").objects);
    expect(admits(v, pod("hanzo", "gateway", "10.245.1.1"), wgGateway, 9650)).toBe(true);
    expect(admits(v, pod("hanzo", "gateway", "10.245.1.1"), wgGateway, 9651)).toBe(false);
    expect(admits(v, pod("hanzo", "iam", "10.245.1.2"), wgGateway, 9650)).toBe(false);
    expect(admits(v, pod("monitoring", "prometheus", "10.245.1.3"), wgGateway, 9586)).toBe(true);
  });

  it("let out of the tunnel only to the local pods a peer cluster may reach, on its ports", () => {
    const v = view(generate("24.144.69.101:51820").objects);
    expect(admits(v, wgGateway, pod("hanzo", "gateway", "10.245.1.1"), 4000)).toBe(true);
    expect(admits(v, wgGateway, pod("hanzo", "gateway", "10.245.1.1"), 4001)).toBe(false);
    expect(admits(v, wgGateway, pod("hanzo", "postgres", "10.245.1.4"), 5432)).toBe(false);
  });

  it("say so when a peer cannot be named by address (a DNS endpoint, or none): UDP from anywhere", () => {
    for (const [endpoint, why] of [
      ["lux.gw.hanzo.ai:51820", "is a DNS name"],
      [null, "declares no endpoint"],
    ] as const) {
      const g = generate(endpoint);
      expect(g.warnings.map((w) => [w.effect, w.at.line])).toEqual([["widens", 7]]);
      expect(g.warnings[0]!.message).toContain(why);
      expect(g.objects[0]!.spec!.ingress![0]!.from).toEqual([{ ipBlock: { cidr: "0.0.0.0/0" } }, { ipBlock: { cidr: "::/0" } }]);
      for (const o of g.objects) expect(() => validateObject(o)).not.toThrow();
    }
  });

  it("zt netpol emits them beside the pod objects, and takes the peer's pod CIDR from the mesh", () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-mesh-netpol-"));
    writeFileSync(join(dir, "policy.yaml"), POLICY);
    writeFileSync(join(dir, "mesh.yaml"), MESH("24.144.69.101:51820"));
    const r = zt(["netpol", dir, "--cluster", "hanzo-k8s"]);
    expect(r.code, r.err).toBe(0);
    const objs = parseAllDocuments(r.out).map((d) => d.toJS() as NetworkPolicy);
    const names = objs.map((o) => o.metadata!.name);
    expect(names).toContain("zt-wireguard-gateway-ingress");
    expect(names).toContain("zt-wireguard-gateway-egress");
    // The validators' traffic into hanzo is admitted from lux-k8s's pod CIDR with no --remote-cidr.
    const gw = objs.find((o) => o.metadata!.name === "gateway-ingress")!;
    expect(JSON.stringify(gw.spec!.ingress)).toContain("10.244.0.0/16");
    // An explicit flag still wins.
    const flagged = zt(["netpol", dir, "--cluster", "hanzo-k8s", "--remote-cidr", "lux-k8s=10.99.0.0/16"]);
    expect(flagged.out).toContain("10.99.0.0/16");
    expect(flagged.out).not.toContain("10.244.0.0/16");
    // A cluster outside the mesh gets no gateway objects.
    const other = zt(["netpol", dir, "--cluster", "ci"]);
    expect(other.code, other.err).toBe(0);
    expect(other.out).not.toContain("zt-wireguard-gateway");
  });

  it("zt netpol refuses an invalid mesh document with file:line:col", () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-mesh-netpol-"));
    writeFileSync(join(dir, "policy.yaml"), POLICY);
    writeFileSync(join(dir, "mesh.yaml"), MESH("24.144.69.101:51820").replace("address: 10.10.0.2", "address: 10.11.0.2"));
    const r = zt(["netpol", dir, "--cluster", "hanzo-k8s"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${join(dir, "mesh.yaml")}:15:16: address 10.11.0.2 of cluster lux-k8s is outside the mesh CIDR`);
  });
});
