import "reflect-metadata";
import { describe, it, expect, beforeAll } from "vitest";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { validateX509Svid, buildTrustBundleSet, type TrustBundleSet, type SvidResult } from "../../host/identity/svid.js";
import { splitDerCertificates, pemCertificatesToDer, derToPem } from "../../host/identity/der.js";
import { createCa, issueSvid, type TestCa } from "./pki.js";

const ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";

let root: TestCa;
let other: TestCa;
let bundles: TrustBundleSet;

function expectError(r: SvidResult, code: string, fragment: string): void {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.code).toBe(code);
  expect(r.error).toContain(fragment);
}

beforeAll(async () => {
  root = await createCa({ trustDomain: "hanzo.ai" });
  other = await createCa({ trustDomain: "evil.example" });
  bundles = buildTrustBundleSet([
    ["hanzo.ai", [root.der]],
    ["evil.example", [other.der]],
  ]);
});

describe("validateX509Svid: accepts", () => {
  it("a valid leaf signed by the trust domain's root", async () => {
    const s = await issueSvid(root, ID);
    const r = validateX509Svid(s.chainDer, bundles);
    expect(r).toMatchObject({ ok: true, spiffeId: ID, trustDomain: "hanzo.ai" });
    if (r.ok) {
      expect(r.path).toHaveLength(2);
      expect(r.notAfter.getTime()).toBe(s.leaf.notAfter.getTime());
      expect(r.validUntil.getTime()).toBeLessThanOrEqual(r.notAfter.getTime());
    }
  });

  it("a chain through two intermediates, given as one concatenated DER buffer", async () => {
    const i1 = await createCa({ trustDomain: "hanzo.ai", name: "i1", issuer: root });
    const i2 = await createCa({ trustDomain: "hanzo.ai", name: "i2", issuer: i1 });
    const s = await issueSvid(i2, ID);
    expect(s.chainDer).toHaveLength(3);
    const r = validateX509Svid(Buffer.concat(s.chainDer), bundles);
    expect(r).toMatchObject({ ok: true, spiffeId: ID });
    if (r.ok) expect(r.path).toHaveLength(4);
  });

  it("a chain that also carries the root", async () => {
    const s = await issueSvid(root, ID);
    expect(validateX509Svid([...s.chainDer, root.der], bundles).ok).toBe(true);
  });

  it("a leaf without extended key usage and with DNS SANs besides the one URI SAN", async () => {
    const s = await issueSvid(root, ID, { eku: null, dns: ["gateway.hanzo.svc"] });
    expect(validateX509Svid(s.chainDer, bundles).ok).toBe(true);
  });

  it("a leaf under a name-constrained intermediate that permits its trust domain", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "nc", issuer: root, permittedUris: ["hanzo.ai"] });
    const s = await issueSvid(i, ID);
    expect(validateX509Svid(s.chainDer, bundles).ok).toBe(true);
  });
});

describe("validateX509Svid: rejects by the X.509-SVID spec", () => {
  it("two URI SANs", async () => {
    const s = await issueSvid(root, null, { uris: [ID, "spiffe://hanzo.ai/hanzo-k8s/hanzo/iam"] });
    expectError(validateX509Svid(s.chainDer, bundles), "uri_san_count", "exactly one URI SAN, the leaf has 2");
  });

  it("no URI SAN", async () => {
    const s = await issueSvid(root, null, { dns: ["gateway.hanzo.svc"] });
    expectError(validateX509Svid(s.chainDer, bundles), "uri_san_count", "the leaf has 0");
  });

  it("a URI SAN that is not a SPIFFE ID", async () => {
    const s = await issueSvid(root, "https://hanzo.ai/gateway");
    expectError(validateX509Svid(s.chainDer, bundles), "invalid_spiffe_id", 'must start with "spiffe://"');
  });

  it("a SPIFFE ID with an invalid path (rules of compiler/spiffe.ts)", async () => {
    const s = await issueSvid(root, "spiffe://hanzo.ai/a/../b");
    expectError(validateX509Svid(s.chainDer, bundles), "invalid_spiffe_id", '".."');
  });

  it("a leaf naming the bare trust domain", async () => {
    const s = await issueSvid(root, "spiffe://hanzo.ai");
    expectError(validateX509Svid(s.chainDer, bundles), "spiffe_id_root_path", "no path");
  });

  it("a leaf that is a CA", async () => {
    const s = await issueSvid(root, ID, { ca: true });
    expectError(validateX509Svid(s.chainDer, bundles), "leaf_is_ca", "cA=true");
  });

  it("a leaf without key usage", async () => {
    const s = await issueSvid(root, ID, { keyUsage: null });
    expectError(validateX509Svid(s.chainDer, bundles), "key_usage_missing", "no key usage");
  });

  it("a leaf whose key usage is not critical", async () => {
    const s = await issueSvid(root, ID, { keyUsageCritical: false });
    expectError(validateX509Svid(s.chainDer, bundles), "key_usage_not_critical", "critical");
  });

  it("a leaf without digitalSignature", async () => {
    const s = await issueSvid(root, ID, { keyUsage: x509.KeyUsageFlags.keyEncipherment });
    expectError(validateX509Svid(s.chainDer, bundles), "key_usage_digital_signature", "digitalSignature");
  });

  it("a leaf with keyCertSign", async () => {
    const s = await issueSvid(root, ID, { keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign });
    expectError(validateX509Svid(s.chainDer, bundles), "key_usage_signing_bits", "keyCertSign or cRLSign");
  });

  it("a leaf with cRLSign", async () => {
    const s = await issueSvid(root, ID, { keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign });
    expectError(validateX509Svid(s.chainDer, bundles), "key_usage_signing_bits", "keyCertSign or cRLSign");
  });

  it("an extended key usage without clientAuth", async () => {
    const s = await issueSvid(root, ID, { eku: [x509.ExtendedKeyUsage.serverAuth] });
    expectError(validateX509Svid(s.chainDer, bundles), "extended_key_usage", "serverAuth and clientAuth");
  });

  it("an unknown critical extension", async () => {
    const ext = new x509.Extension("1.3.6.1.4.1.99999.1", true, new Uint8Array([0x05, 0x00]));
    const s = await issueSvid(root, ID, { extraExtensions: [ext] });
    expectError(validateX509Svid(s.chainDer, bundles), "unsupported_critical_extension", "1.3.6.1.4.1.99999.1");
  });
});

describe("validateX509Svid: rejects by path validation", () => {
  it("an expired leaf", async () => {
    const s = await issueSvid(root, ID, { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
    expectError(validateX509Svid(s.chainDer, bundles), "expired", "leaf certificate");
  });

  it("a leaf not yet valid", async () => {
    const s = await issueSvid(root, ID, { notBefore: new Date(Date.now() + 3600_000), notAfter: new Date(Date.now() + 7200_000) });
    expectError(validateX509Svid(s.chainDer, bundles), "not_yet_valid", "not valid before");
  });

  it("the same leaf at a time when it is valid and after it expired", async () => {
    const s = await issueSvid(root, ID, { ttlMs: 60_000 });
    expect(validateX509Svid(s.chainDer, bundles, new Date()).ok).toBe(true);
    expectError(validateX509Svid(s.chainDer, bundles, new Date(Date.now() + 120_000)), "expired", "expired at");
  });

  it("an expired intermediate", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "old", issuer: root, notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() + 10_000) });
    const s = await issueSvid(i, ID, { ttlMs: 3600_000 });
    expectError(validateX509Svid(s.chainDer, bundles, new Date(Date.now() + 60_000)), "expired", "intermediate certificate (CN=old");
  });

  it("a leaf claiming another trust domain, signed by this domain's CA", async () => {
    const s = await issueSvid(root, "spiffe://evil.example/ns/x/sa/y");
    expectError(validateX509Svid(s.chainDer, bundles), "untrusted_chain", 'trust bundle of trust domain "evil.example"');
  });

  it("a leaf from a trust domain without a bundle", async () => {
    const stranger = await createCa({ trustDomain: "stranger.org" });
    const s = await issueSvid(stranger, "spiffe://stranger.org/ns/a/sa/b");
    expectError(validateX509Svid(s.chainDer, bundles), "unknown_trust_domain", 'no trust bundle for trust domain "stranger.org"');
  });

  it("a leaf whose signature was made by another key under the CA's name", async () => {
    const forger = await createCa({ trustDomain: "hanzo.ai" });
    const s = await issueSvid(root, ID, { signingKey: forger.keys.privateKey });
    expectError(validateX509Svid(s.chainDer, bundles), "bad_signature", "does not verify");
  });

  it("a chain that misses its intermediate", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "missing", issuer: root });
    const s = await issueSvid(i, ID);
    expectError(validateX509Svid([s.chainDer[0]!], bundles), "untrusted_chain", "no issuer found for the leaf");
  });

  it("an intermediate that is not a CA", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "notca", issuer: root, ca: false });
    const s = await issueSvid(i, ID);
    expectError(validateX509Svid(s.chainDer, bundles), "not_a_signing_certificate", "intermediate certificate (CN=notca, O=SPIFFE) is not a CA");
  });

  it("an intermediate without keyCertSign", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "nosign", issuer: root, keyUsage: x509.KeyUsageFlags.cRLSign });
    const s = await issueSvid(i, ID);
    expectError(validateX509Svid(s.chainDer, bundles), "not_a_signing_certificate", "(CN=nosign, O=SPIFFE) key usage lacks keyCertSign");
  });

  it("a path longer than the root's pathLenConstraint", async () => {
    const tight = await createCa({ trustDomain: "tight.org", pathLength: 0 });
    const i = await createCa({ trustDomain: "tight.org", name: "deep", issuer: tight });
    const s = await issueSvid(i, "spiffe://tight.org/w/x");
    const b = buildTrustBundleSet([["tight.org", [tight.der]]]);
    expectError(validateX509Svid(s.chainDer, b), "path_length_exceeded", "allows 0 intermediate(s)");
  });

  it("a leaf outside the URI name constraints of its intermediate", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "nc2", issuer: root, permittedUris: ["lux.network"] });
    const s = await issueSvid(i, ID);
    expectError(validateX509Svid(s.chainDer, bundles), "name_constraints", 'does not permit URI names in trust domain "hanzo.ai"');
  });

  it("a leaf inside an excluded URI subtree", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "nc3", issuer: root, excludedUris: ["hanzo.ai"] });
    const s = await issueSvid(i, ID);
    expectError(validateX509Svid(s.chainDer, bundles), "name_constraints", "excludes");
  });

  it("garbage and empty input", () => {
    expectError(validateX509Svid([], bundles), "empty_chain", "no certificate");
    expectError(validateX509Svid(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), bundles), "malformed_certificate", "certificate 1");
    expectError(validateX509Svid(Buffer.from("not der"), bundles), "malformed_certificate", "expected a SEQUENCE");
  });
});

describe("DER and PEM containers", () => {
  it("splits concatenated DER and round-trips PEM", async () => {
    const i = await createCa({ trustDomain: "hanzo.ai", name: "split", issuer: root });
    const s = await issueSvid(i, ID);
    const joined = Buffer.concat(s.chainDer);
    const parts = splitDerCertificates(joined);
    expect(parts.map((p) => p.toString("hex"))).toEqual(s.chainDer.map((p) => p.toString("hex")));
    const pem = parts.map((p) => derToPem(p)).join("");
    expect(pemCertificatesToDer(pem).map((p) => p.toString("hex"))).toEqual(s.chainDer.map((p) => p.toString("hex")));
  });

  it("rejects truncated DER with the byte offset", async () => {
    const s = await issueSvid(root, ID);
    expect(() => splitDerCertificates(s.chainDer[0]!.subarray(0, 40))).toThrow(/truncated/);
    expect(() => splitDerCertificates(Buffer.concat([s.chainDer[0]!, Buffer.from([0x04, 0x00])]))).toThrow(/expected a SEQUENCE/);
  });

  it("uses WebCrypto-made ECDSA P-256 keys (the seed's algorithm)", async () => {
    const s = await issueSvid(root, ID);
    const alg = s.leaf.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
    expect(alg.name).toBe("ECDSA");
    expect(alg.namedCurve).toBe("P-256");
  });
});

describe("robustness", () => {
  it("validateX509Svid returns an error, never throws, on arbitrary and mutated input", async () => {
    const fc = await import("fast-check");
    const s = await issueSvid(root, ID);
    const leaf = s.chainDer[0]!;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = validateX509Svid(Buffer.from(bytes), bundles);
        return r.ok === false && typeof r.error === "string" && r.error.length > 0;
      }),
      { numRuns: 300 },
    );
    // Flip bits of one byte of a real SVID: every byte is covered by the DER structure or the
    // signature, so the answer is always a clean rejection.
    fc.assert(
      fc.property(fc.nat({ max: leaf.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const m = Buffer.from(leaf);
        m[pos] = m[pos]! ^ x;
        const r = validateX509Svid([m], bundles);
        return r.ok === false && r.error.length > 0;
      }),
      { numRuns: 300 },
    );
  });
});
