// Every refusal of the WireGuardMesh validator, at its file:line:col, as `zt check` reports it.
import { describe, expect, it } from "vitest";
import { validateCompanion } from "../../compiler/companions.js";
import { formatDiagnostic } from "../../compiler/diagnostics.js";
import { parseCidr } from "../../compiler/mesh/cidr.js";
import { meshFromText } from "../../compiler/mesh/load.js";
import { parsePolicyText } from "../../compiler/parse.js";
import { CLI, zt } from "./helpers.js";

const KEY_A = "Fr/q0w+6PFuz87qLZfMo0OKQyOg+SAYp5e4nJ2y5rh4=";
const KEY_B = "6EelM8EpYCM9hgEiPeywe8aRbqlq4eHsgzVQgv6MEWY=";
const SECRET = "DRBxT1Lb5F5B856RtJdB/6Jha01OWAvNmWmNxOKhCC4=";

// Line numbers below refer to this text (line 1 is "apiVersion").
const BASE = `apiVersion: zt.hanzo.ai/v1
kind: WireGuardMesh
metadata:
  name: hanzo-lux
spec:
  meshCIDR: 10.10.0.0/24
  clusters:
    - name: hanzo-k8s
      address: 10.10.0.1
      endpoint: 24.199.76.156:51820
      publicKey: ${KEY_A}
      keyCreated: "2026-02-23"
      privateKeyFile: /var/run/secrets/zt-wireguard/private-key
      allowedIPs: [10.245.0.0/16]
    - name: lux-k8s
      address: 10.10.0.2
      endpoint: 24.144.69.101:51820
      publicKey: ${KEY_B}
      keyCreated: "2026-02-23"
      privateKeyFile: /var/run/secrets/zt-wireguard/private-key
      allowedIPs: [10.244.0.0/16]
`;

function check(text: string, file = "mesh.yaml"): string[] {
  const r = parsePolicyText(text, file);
  if (!r.ok) return r.errors.map(formatDiagnostic);
  return r.companions.flatMap(validateCompanion).map(formatDiagnostic);
}

function edit(from: string, to: string, text = BASE): string {
  if (!text.includes(from)) throw new Error(`fixture lacks ${from}`);
  return text.replace(from, to);
}

describe("WireGuardMesh validation", () => {
  it("accepts the seed's two-cluster mesh and fills in the defaults", () => {
    expect(check(BASE)).toEqual([]);
    const r = meshFromText(BASE, "mesh.yaml");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.mesh.clusters.map((c) => [c.name, c.listenPort, c.persistentKeepalive, c.endpoint?.text])).toEqual([
      ["hanzo-k8s", 51820, 25, "24.199.76.156:51820"],
      ["lux-k8s", 51820, 25, "24.144.69.101:51820"],
    ]);
    expect(r.mesh.gateway).toEqual({ namespace: "hanzo", podLabels: { app: "zt-wireguard-gateway" }, metricsPort: 9586 });
  });

  it("the shipped mesh/hanzo-lux.yaml passes zt check", () => {
    const r = zt(["check", "mesh"]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).documents).toEqual([{ kind: "WireGuardMesh", source: "mesh/hanzo-lux.yaml" }]);
    expect(CLI).toBe("dist/host/cli/main.js");
  });

  describe("an inline private key is refused anywhere in the document, and never quoted", () => {
    const cases: Array<[string, string, string[]]> = [
      ["a privateKey field beside privateKeyFile", edit("      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.244", `      privateKey: ${SECRET}\n      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.244`), ["mesh.yaml:20:7: inline private key refused: \"spec.clusters[1].privateKey\"", "mesh.yaml:20:19: inline private key refused: key material"]],
      ["a PrivateKey field with a placeholder", edit("  name: hanzo-lux\n", "  name: hanzo-lux\n  annotations:\n    PrivateKey: from-kms\n"), ["mesh.yaml:6:5: inline private key refused: \"metadata.annotations.PrivateKey\""]],
      ["a preshared key", edit("      allowedIPs: [10.245.0.0/16]\n", "      allowedIPs: [10.245.0.0/16]\n      preshared_key: x\n"), ["mesh.yaml:15:7: inline private key refused: \"spec.clusters[0].preshared_key\""]],
      ["a key in the privateKeyFile field", edit("      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.245", `      privateKeyFile: ${SECRET}\n      allowedIPs: [10.245`), ["mesh.yaml:13:23: inline private key refused: key material", "mesh.yaml:13:23: spec.clusters[0].privateKeyFile must be an absolute path"]],
      ["a key in an annotation", edit("  name: hanzo-lux\n", `  name: hanzo-lux\n  annotations:\n    backup: "${SECRET}"\n`), ["mesh.yaml:6:14: inline private key refused: key material"]],
      ["a key in a comment", edit("  meshCIDR: 10.10.0.0/24\n", `  meshCIDR: 10.10.0.0/24 # PrivateKey = ${SECRET}\n`), ["mesh.yaml:6:41: inline private key refused: key material"]],
      ["a key in a comment before the document", `# wg genkey said ${SECRET}\n${BASE}`, ["mesh.yaml:1:18: inline private key refused: key material"]],
      ["a key in hex (the UAPI form)", edit("  name: hanzo-lux\n", `  name: hanzo-lux\n  labels:\n    k: "${Buffer.from(SECRET, "base64").toString("hex")}"\n`), ["mesh.yaml:6:9: inline private key refused: key material"]],
      ["a wg-quick config pasted in", edit("  name: hanzo-lux\n", `  name: hanzo-lux\n  annotations:\n    config: |\n      [Interface]\n      PrivateKey = ${SECRET}\n`), ["mesh.yaml:8:20: inline private key refused: key material"]],
    ];
    for (const [name, text, want] of cases) {
      it(name, () => {
        const got = check(text);
        expect(got.length, got.join("\n")).toBe(want.length);
        want.forEach((w, i) => expect(got[i]).toContain(w));
        for (const line of got) expect(line).not.toContain(SECRET);
      });
    }

    it("the second document of a file is scanned over its own span only", () => {
      const two = `${BASE}---\n# second: ${SECRET}\n${edit("hanzo-lux", "second")}`;
      const got = check(two);
      expect(got).toHaveLength(1);
      expect(got[0]).toMatch(/^mesh\.yaml:23:11: inline private key refused/);
    });
  });

  it("a malformed public key (not 32 bytes of base64), without quoting it", () => {
    for (const bad of ["abc", KEY_A.slice(1), `${KEY_A.slice(0, 42)}B=`, `${KEY_A.slice(0, 43)}`, "!".repeat(44)]) {
      const got = check(edit(KEY_A, `"${bad}"`));
      expect(got).toHaveLength(1);
      expect(got[0]).toMatch(/^mesh\.yaml:11:18: spec\.clusters\[0\]\.publicKey is not a WireGuard key: it must be 32 bytes in base64/);
      expect(got[0]).not.toContain(bad);
    }
  });

  it("a duplicate public key", () => {
    expect(check(edit(KEY_B, KEY_A))).toEqual([
      "mesh.yaml:18:18: duplicate publicKey: cluster lux-k8s has the same key as cluster hanzo-k8s (11:18); every gateway needs its own key pair",
    ]);
  });

  it("an address outside the mesh CIDR, or its network/broadcast address, or not an address", () => {
    expect(check(edit("address: 10.10.0.2", "address: 10.11.0.2"))).toEqual(["mesh.yaml:16:16: address 10.11.0.2 of cluster lux-k8s is outside the mesh CIDR 10.10.0.0/24"]);
    expect(check(edit("address: 10.10.0.2", "address: 10.10.0.255"))).toEqual(["mesh.yaml:16:16: address 10.10.0.255 is the network or broadcast address of the mesh CIDR 10.10.0.0/24"]);
    expect(check(edit("address: 10.10.0.2", "address: 10.10.0.2/24"))).toEqual(["mesh.yaml:16:16: spec.clusters[1].address \"10.10.0.2/24\" is not an IP address (the gateway's address in the mesh, without a prefix)"]);
    expect(check(edit("address: 10.10.0.2", "address: 10.10.0.1"))).toEqual(["mesh.yaml:16:16: duplicate address 10.10.0.1: also the address of cluster hanzo-k8s (9:16)"]);
  });

  it("overlapping allowedIPs between peers, with the mesh CIDR, or within one cluster", () => {
    expect(check(edit("[10.244.0.0/16]", "[10.245.128.0/17]"))).toEqual([
      "mesh.yaml:21:20: allowedIPs 10.245.128.0/17 of cluster lux-k8s overlaps 10.245.0.0/16 of cluster hanzo-k8s (14:20): WireGuard routes each address to one peer only",
    ]);
    expect(check(edit("[10.244.0.0/16]", "[10.0.0.0/8]"))[0]).toMatch(/^mesh\.yaml:21:20: allowedIPs 10\.0\.0\.0\/8 of cluster lux-k8s overlaps the mesh CIDR 10\.10\.0\.0\/24 \(6:13\)/);
    expect(check(edit("[10.244.0.0/16]", "[10.10.0.0/28]"))[0]).toContain("overlaps the mesh CIDR");
    expect(check(edit("[10.244.0.0/16]", "[10.244.0.0/16, 10.244.3.0/24]"))).toEqual([
      "mesh.yaml:21:35: allowedIPs 10.244.3.0/24 of cluster lux-k8s overlaps 10.244.0.0/16 of another block of the same cluster (21:20): WireGuard routes each address to one peer only",
    ]);
    // IPv4 and IPv6 never overlap.
    expect(check(edit("[10.244.0.0/16]", "[10.244.0.0/16, \"2001:db8::/32\"]"))).toEqual([]);
    expect(check(edit("[10.244.0.0/16]", "[\"2001:db8:1::/48\", \"2001:db8::/32\"]"))[0]).toContain("overlaps 2001:db8:1::/48 of another block of the same cluster");
  });

  it("malformed CIDRs, endpoints, ports, keepalives and dates", () => {
    expect(check(edit("[10.244.0.0/16]", "[10.244.0.1/16]"))).toEqual(["mesh.yaml:21:20: spec.clusters[1].allowedIPs[0] \"10.244.0.1/16\" has host bits set: the block is 10.244.0.0/16"]);
    expect(check(edit("[10.244.0.0/16]", "[10.244.0.0/33]"))[0]).toContain("the prefix must be 0-32");
    expect(check(edit("meshCIDR: 10.10.0.0/24", "meshCIDR: 10.10.0.0"))[0]).toMatch(/^mesh\.yaml:6:13: spec\.meshCIDR "10\.10\.0\.0" is not a CIDR block/);
    expect(check(edit("endpoint: 24.144.69.101:51820", "endpoint: 24.144.69.101"))).toEqual(["mesh.yaml:17:17: spec.clusters[1].endpoint \"24.144.69.101\" must be host:port (an IPv6 address in brackets, e.g. [2001:db8::1]:51820)"]);
    expect(check(edit("endpoint: 24.144.69.101:51820", "endpoint: 24.144.69.101:70000"))[0]).toContain("port 70000 is out of range");
    expect(check(edit("endpoint: 24.144.69.101:51820", "endpoint: \"[2001:db8::1]:51820\""))).toEqual([]);
    expect(check(edit("endpoint: 24.144.69.101:51820", "endpoint: lux.gw.hanzo.ai:51820"))).toEqual([]);
    expect(check(edit("endpoint: 24.144.69.101:51820", "endpoint: 999.1.1.1:51820"))[0]).toContain("is neither an IP address nor a DNS name");
    expect(check(edit("      allowedIPs: [10.244.0.0/16]", "      allowedIPs: [10.244.0.0/16]\n      listenPort: 0\n      persistentKeepalive: -1"))).toEqual([
      "mesh.yaml:22:19: spec.clusters[1].listenPort 0 is out of range (1-65535)",
      "mesh.yaml:23:28: spec.clusters[1].persistentKeepalive -1 is out of range (0-65535)",
    ]);
    expect(check(edit('keyCreated: "2026-02-23"\n      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.244', 'keyCreated: "last spring"\n      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.244'))[0]).toMatch(
      /^mesh\.yaml:19:19: spec\.clusters\[1\]\.keyCreated "last spring" is not a date/,
    );
    expect(check(edit("privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.245", "privateKeyFile: secrets/key\n      allowedIPs: [10.245"))).toEqual([
      "mesh.yaml:13:23: spec.clusters[0].privateKeyFile must be an absolute path (the file a KMS-backed Secret or CSI volume mounts in the gateway pod)",
    ]);
  });

  it("missing and unknown fields, too few clusters, duplicate names, two gateways without endpoints", () => {
    expect(check(edit("      publicKey: " + KEY_B + "\n", ""))).toEqual(['mesh.yaml:15:7: spec.clusters[1]: missing required field "publicKey"']);
    expect(check(edit("      keyCreated: \"2026-02-23\"\n      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.244", "      privateKeyFile: /var/run/secrets/zt-wireguard/private-key\n      allowedIPs: [10.244"))).toEqual([
      'mesh.yaml:15:7: spec.clusters[1]: missing required field "keyCreated"',
    ]);
    expect(check(edit("      allowedIPs: [10.244.0.0/16]", "      allowedIPs: [10.244.0.0/16]\n      mtu: 1420"))).toEqual([
      'mesh.yaml:22:7: unknown field "mtu" in spec.clusters[1] (allowed: name, address, endpoint, listenPort, publicKey, keyCreated, privateKeyFile, allowedIPs, persistentKeepalive)',
    ]);
    const one = BASE.slice(0, BASE.indexOf("    - name: lux-k8s"));
    expect(check(one)).toEqual(["mesh.yaml:8:5: spec.clusters must list at least two clusters (a mesh joins gateways), got 1"]);
    expect(check(edit("name: lux-k8s", "name: hanzo-k8s"))).toEqual(["mesh.yaml:15:7: duplicate cluster name \"hanzo-k8s\" (also at 8:7)"]);
    expect(check(edit("name: lux-k8s", "name: Lux_K8s"))[0]).toContain('spec.clusters[1].name "Lux_K8s" is invalid');
    const noEndpoints = edit("      endpoint: 24.199.76.156:51820\n", "", edit("      endpoint: 24.144.69.101:51820\n", ""));
    expect(check(noEndpoints)).toEqual(["mesh.yaml:14:7: cluster lux-k8s has no endpoint, nor has cluster hanzo-k8s (8:7): two gateways without endpoints can never reach each other"]);
    expect(check(edit("      endpoint: 24.144.69.101:51820\n", ""))).toEqual([]);
    expect(check(edit("apiVersion: zt.hanzo.ai/v1", "apiVersion: v1"))).toEqual(['mesh.yaml:1:13: apiVersion must be "zt.hanzo.ai/v1", got "v1"']);
  });

  it("the gateway selector", () => {
    const gw = (g: string): string[] => check(edit("  meshCIDR: 10.10.0.0/24\n", `  meshCIDR: 10.10.0.0/24\n  gateway:\n${g}`));
    expect(gw("    namespace: mesh\n    podLabels: {app: wg}\n")).toEqual([]);
    expect(gw("    namespace: Mesh_NS\n")[0]).toContain('spec.gateway.namespace "Mesh_NS" is not a Kubernetes namespace name');
    expect(gw("    podLabels: {}\n")[0]).toContain("spec.gateway.podLabels must name at least one label");
    expect(gw("    podLabels: {app: \"not a value\"}\n")[0]).toContain('is not a Kubernetes label value');
  });

  it("zt check prints the errors as file:line:col and exits 1", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const file = join(mkdtempSync(join(tmpdir(), "zt-mesh-check-")), "mesh.yaml");
    writeFileSync(file, edit("      allowedIPs: [10.244.0.0/16]", `      allowedIPs: [10.244.0.0/16]\n      privateKey: ${SECRET}`));
    const r = zt(["check", file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${file}:22:7: inline private key refused`);
    expect(r.err).toContain("2 errors");
    expect(r.err + r.out).not.toContain(SECRET);
  });
});

describe("CIDR arithmetic", () => {
  it("canonical text for IPv4 and IPv6 blocks", () => {
    const t = (s: string): string => {
      const r = parseCidr(s);
      return r.ok ? r.cidr.text : r.error;
    };
    expect(t("10.244.0.0/16")).toBe("10.244.0.0/16");
    expect(t("2001:0db8:0000:0000:0000:0000:0000:0000/32")).toBe("2001:db8::/32");
    expect(t("::/0")).toBe("::/0");
    expect(t("fd00:1:0:0:1::/80")).toBe("fd00:1:0:0:1::/80");
    expect(t("::ffff:192.0.2.0/120")).toBe("::ffff:c000:200/120");
    expect(t("0.0.0.0/0")).toBe("0.0.0.0/0");
  });
});
