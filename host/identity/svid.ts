// X.509-SVID validation by the SPIFFE X.509-SVID spec (spiffe/standards X509-SVID.md):
// exactly one URI SAN holding a SPIFFE ID with a non-root path; the leaf is not a CA, its key
// usage is critical, has digitalSignature and neither keyCertSign nor cRLSign; an extended key
// usage, when present, holds serverAuth and clientAuth; the chain leads (RFC 5280 path
// validation: names, signatures, CA flags, keyCertSign, path length, validity, name
// constraints) to the trust bundle of the leaf's own trust domain.
//
// Node's crypto.X509Certificate does signatures and issuer matching (synchronously, in
// OpenSSL); @peculiar/x509 and @peculiar/asn1-x509 decode the extensions.
// @peculiar/x509 needs the Reflect metadata API; this import must precede it.
import "reflect-metadata";
import { X509Certificate as NodeCert, createHash } from "node:crypto";
import {
  X509Certificate as AsnCert,
  BasicConstraintsExtension,
  KeyUsagesExtension,
  KeyUsageFlags,
  ExtendedKeyUsageExtension,
  ExtendedKeyUsage,
} from "@peculiar/x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import { SubjectAlternativeName, NameConstraints, type GeneralName } from "@peculiar/asn1-x509";
import { parseSpiffeId, formatSpiffeId } from "../../compiler/spiffe.js";
import { splitDerCertificates } from "./der.js";

const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_KEY_USAGE = "2.5.29.15";
const OID_EXT_KEY_USAGE = "2.5.29.37";
const OID_SAN = "2.5.29.17";
const OID_NAME_CONSTRAINTS = "2.5.29.30";
const OID_SKI = "2.5.29.14";
const OID_AKI = "2.5.29.35";
/** Critical extensions we process; RFC 5280 says reject a certificate with any other. */
const UNDERSTOOD = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE, OID_EXT_KEY_USAGE, OID_SAN, OID_NAME_CONSTRAINTS, OID_SKI, OID_AKI]);

/** Longest path (leaf + intermediates) we build; SPIRE uses at most a couple of intermediates. */
export const MAX_CHAIN_DEPTH = 8;

/** A parsed certificate: Node's view for crypto, the ASN.1 view for extensions. */
export interface ParsedCert {
  readonly der: Buffer;
  readonly node: NodeCert;
  readonly asn: AsnCert;
}

/** Trust bundles by trust domain name (e.g. "hanzo.ai"), each a list of CA certificates. */
export type TrustBundleSet = ReadonlyMap<string, readonly ParsedCert[]>;

export type SvidErrorCode =
  | "empty_chain"
  | "malformed_certificate"
  | "uri_san_count"
  | "invalid_spiffe_id"
  | "spiffe_id_root_path"
  | "leaf_is_ca"
  | "key_usage_missing"
  | "key_usage_not_critical"
  | "key_usage_digital_signature"
  | "key_usage_signing_bits"
  | "extended_key_usage"
  | "unsupported_critical_extension"
  | "unknown_trust_domain"
  | "untrusted_chain"
  | "bad_signature"
  | "not_a_signing_certificate"
  | "path_length_exceeded"
  | "name_constraints"
  | "chain_too_long"
  | "expired"
  | "not_yet_valid";

export interface SvidOk {
  readonly ok: true;
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Leaf expiry. */
  readonly notAfter: Date;
  /** Earliest expiry along the verified path: the verdict holds until then (and the bundle changes). */
  readonly validUntil: Date;
  /** Certificates of the verified path, leaf first, trust anchor last. */
  readonly path: readonly ParsedCert[];
}

export interface SvidError {
  readonly ok: false;
  readonly code: SvidErrorCode;
  readonly error: string;
}

export type SvidResult = SvidOk | SvidError;

function fail(code: SvidErrorCode, error: string): SvidError {
  return { ok: false, code, error };
}

/**
 * Parsed certificates by SHA-256 of their DER, most recently used last. Parsing costs about a
 * millisecond (ASN.1 decoding in JS), and the same intermediates and leaves come back on every
 * connection of a workload, so a bounded cache keeps that off the per-connection path.
 */
const PARSE_CACHE_MAX = 1024;
const parseCache = new Map<string, ParsedCert>();

/** Like parseCertificateUncached, memoized by the DER bytes (bounded LRU). */
export function parseCertificate(der: Uint8Array): ParsedCert {
  const key = createHash("sha256").update(der).digest("base64");
  const hit = parseCache.get(key);
  if (hit) {
    parseCache.delete(key);
    parseCache.set(key, hit);
    return hit;
  }
  const parsed = parseCertificateUncached(der);
  parseCache.set(key, parsed);
  if (parseCache.size > PARSE_CACHE_MAX) parseCache.delete(parseCache.keys().next().value!);
  return parsed;
}

/** Parses one DER certificate; throws with a clear message when it is not one. */
export function parseCertificateUncached(der: Uint8Array): ParsedCert {
  // Own copy: the cache outlives the caller's buffer, which may be a view into a reused one.
  const buf = Buffer.from(der);
  let node: NodeCert;
  try {
    node = new NodeCert(buf);
  } catch (e) {
    throw new Error(`not an X.509 certificate: ${(e as Error).message}`);
  }
  let asn: AsnCert;
  try {
    asn = new AsnCert(new Uint8Array(buf));
    // Extensions and dates decode lazily; decode them now so a bad one fails here, clearly.
    void asn.extensions;
    void asn.notBefore;
    void asn.notAfter;
  } catch (e) {
    throw new Error(`X.509 certificate cannot be decoded: ${(e as Error).message}`);
  }
  return { der: buf, node, asn };
}

/** A trust bundle set from DER certificates per trust domain; throws on a bad certificate. */
export function buildTrustBundleSet(entries: Iterable<readonly [string, readonly Uint8Array[]]>): Map<string, ParsedCert[]> {
  const out = new Map<string, ParsedCert[]>();
  for (const [td, ders] of entries) {
    const list = out.get(td) ?? [];
    ders.forEach((d, i) => {
      try {
        list.push(parseCertificate(d));
      } catch (e) {
        throw new Error(`trust bundle of "${td}", certificate ${i + 1}: ${(e as Error).message}`);
      }
    });
    out.set(td, list);
  }
  return out;
}

function describe(c: ParsedCert): string {
  return c.asn.subject || `serial ${c.asn.serialNumber}`;
}

function checkCritical(c: ParsedCert, role: string): SvidError | null {
  for (const ext of c.asn.extensions) {
    if (ext.critical && !UNDERSTOOD.has(ext.type)) {
      return fail("unsupported_critical_extension", `${role} certificate (${describe(c)}) has a critical extension ${ext.type} that is not supported`);
    }
  }
  return null;
}

function checkValidity(c: ParsedCert, role: string, now: Date): SvidError | null {
  if (now.getTime() < c.asn.notBefore.getTime()) {
    return fail("not_yet_valid", `${role} certificate (${describe(c)}) is not valid before ${c.asn.notBefore.toISOString()}`);
  }
  if (now.getTime() > c.asn.notAfter.getTime()) {
    return fail("expired", `${role} certificate (${describe(c)}) expired at ${c.asn.notAfter.toISOString()}`);
  }
  return null;
}

function uriSans(c: ParsedCert): string[] {
  const ext = c.asn.extensions.find((e) => e.type === OID_SAN);
  if (!ext) return [];
  const san = AsnConvert.parse(ext.value, SubjectAlternativeName);
  const out: string[] = [];
  for (const gn of san) if (gn.uniformResourceIdentifier !== undefined) out.push(gn.uniformResourceIdentifier);
  return out;
}

function dnsSans(c: ParsedCert): string[] {
  const ext = c.asn.extensions.find((e) => e.type === OID_SAN);
  if (!ext) return [];
  const san = AsnConvert.parse(ext.value, SubjectAlternativeName);
  const out: string[] = [];
  for (const gn of san) if (gn.dNSName !== undefined) out.push(gn.dNSName.toLowerCase());
  return out;
}

/** Leaf rules of X509-SVID.md sections 2, 3.1, 4.1, 4.3, 4.4 and 5.2 (no chain, no time). */
export function checkLeaf(leaf: ParsedCert): SvidError | { spiffeId: string; trustDomain: string } {
  const crit = checkCritical(leaf, "leaf");
  if (crit) return crit;
  let uris: string[];
  try {
    uris = uriSans(leaf);
  } catch (e) {
    return fail("malformed_certificate", `leaf subject alternative name cannot be decoded: ${(e as Error).message}`);
  }
  if (uris.length !== 1) {
    return fail("uri_san_count", `an X.509-SVID must have exactly one URI SAN, the leaf has ${uris.length}${uris.length ? ` (${uris.join(", ")})` : ""}`);
  }
  const parsed = parseSpiffeId(uris[0]!);
  if (!parsed.ok) return fail("invalid_spiffe_id", `leaf URI SAN "${uris[0]}" is not a valid SPIFFE ID: ${parsed.error}`);
  if (parsed.value.segments.length === 0) {
    return fail("spiffe_id_root_path", `leaf SPIFFE ID "${uris[0]}" has no path; only signing certificates may name the bare trust domain`);
  }
  const bc = leaf.asn.getExtension(BasicConstraintsExtension);
  if (bc && bc.ca) return fail("leaf_is_ca", "the leaf certificate is a CA (basicConstraints cA=true); an X.509-SVID leaf must have cA=false");
  const ku = leaf.asn.getExtension(KeyUsagesExtension);
  if (!ku) return fail("key_usage_missing", "the leaf certificate has no key usage extension; X.509-SVIDs must carry one");
  if (!ku.critical) return fail("key_usage_not_critical", "the leaf key usage extension must be marked critical");
  if ((ku.usages & KeyUsageFlags.digitalSignature) === 0) return fail("key_usage_digital_signature", "the leaf key usage must include digitalSignature");
  if ((ku.usages & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) !== 0) {
    return fail("key_usage_signing_bits", "the leaf key usage must not include keyCertSign or cRLSign");
  }
  const eku = leaf.asn.getExtension(ExtendedKeyUsageExtension);
  if (eku) {
    const usages = eku.usages.map(String);
    if (!usages.includes(ExtendedKeyUsage.serverAuth) || !usages.includes(ExtendedKeyUsage.clientAuth)) {
      return fail("extended_key_usage", "the leaf extended key usage must include both serverAuth and clientAuth when present");
    }
  }
  return { spiffeId: formatSpiffeId(parsed.value), trustDomain: parsed.value.trustDomain };
}

/** Signing-certificate rules (X509-SVID.md 3.2, 4.1, 4.3) plus RFC 5280 path length. */
function checkSigner(c: ParsedCert, role: string, intermediatesBelow: number, now: Date): SvidError | null {
  const crit = checkCritical(c, role);
  if (crit) return crit;
  const bc = c.asn.getExtension(BasicConstraintsExtension);
  if (!bc || !bc.ca) return fail("not_a_signing_certificate", `${role} certificate (${describe(c)}) is not a CA (basicConstraints cA must be true)`);
  const ku = c.asn.getExtension(KeyUsagesExtension);
  if (ku && (ku.usages & KeyUsageFlags.keyCertSign) === 0) {
    return fail("not_a_signing_certificate", `${role} certificate (${describe(c)}) key usage lacks keyCertSign`);
  }
  if (bc.pathLength !== undefined && intermediatesBelow > bc.pathLength) {
    return fail("path_length_exceeded", `${role} certificate (${describe(c)}) allows ${bc.pathLength} intermediate(s) below it, the path has ${intermediatesBelow}`);
  }
  return checkValidity(c, role, now);
}

/** RFC 5280 4.2.1.10 host matching: ".example.com" = any subdomain, "example.com" = that host. */
function uriHostMatches(constraint: string, host: string): boolean {
  const c = constraint.toLowerCase();
  if (c.startsWith(".")) return host.endsWith(c);
  return host === c;
}

/** RFC 5280 4.2.1.10 DNS matching: "example.com" = the name and its subdomains. */
function dnsMatches(constraint: string, name: string): boolean {
  const c = constraint.toLowerCase().replace(/^\./, "");
  return name === c || name.endsWith("." + c);
}

function checkNameConstraints(signer: ParsedCert, role: string, trustDomain: string, dnsNames: string[]): SvidError | null {
  const ext = signer.asn.extensions.find((e) => e.type === OID_NAME_CONSTRAINTS);
  if (!ext) return null;
  let nc: NameConstraints;
  try {
    nc = AsnConvert.parse(ext.value, NameConstraints);
  } catch (e) {
    return fail("name_constraints", `${role} certificate (${describe(signer)}) name constraints cannot be decoded: ${(e as Error).message}`);
  }
  const check = (gn: GeneralName, kind: "permitted" | "excluded"): "match" | "no-match" | "n/a" | SvidError => {
    if (gn.uniformResourceIdentifier !== undefined) return uriHostMatches(gn.uniformResourceIdentifier, trustDomain) ? "match" : "no-match";
    if (gn.dNSName !== undefined) {
      if (dnsNames.length === 0) return "n/a";
      const all = dnsNames.every((n) => dnsMatches(gn.dNSName!, n));
      const any = dnsNames.some((n) => dnsMatches(gn.dNSName!, n));
      return kind === "permitted" ? (all ? "match" : "no-match") : any ? "match" : "no-match";
    }
    // Directory names, IPs, e-mail: the SVID carries none we could check, so fail closed.
    return fail("name_constraints", `${role} certificate (${describe(signer)}) has a ${kind} name constraint of a type other than URI or DNS, which is not supported`);
  };
  const permitted = nc.permittedSubtrees ? [...nc.permittedSubtrees] : [];
  const excluded = nc.excludedSubtrees ? [...nc.excludedSubtrees] : [];
  for (const st of excluded) {
    const r = check(st.base, "excluded");
    if (typeof r === "object") return r;
    if (r === "match") return fail("name_constraints", `${role} certificate (${describe(signer)}) excludes the leaf's names (trust domain "${trustDomain}")`);
  }
  // Within a name type, at least one permitted subtree must match.
  const uriPermitted = permitted.filter((st) => st.base.uniformResourceIdentifier !== undefined);
  if (uriPermitted.length && !uriPermitted.some((st) => check(st.base, "permitted") === "match")) {
    return fail("name_constraints", `${role} certificate (${describe(signer)}) does not permit URI names in trust domain "${trustDomain}"`);
  }
  const dnsPermitted = permitted.filter((st) => st.base.dNSName !== undefined);
  if (dnsPermitted.length && dnsNames.length && !dnsPermitted.some((st) => check(st.base, "permitted") === "match")) {
    return fail("name_constraints", `${role} certificate (${describe(signer)}) does not permit the leaf's DNS names`);
  }
  for (const st of permitted) {
    const r = check(st.base, "permitted");
    if (typeof r === "object") return r;
  }
  return null;
}

function issuedBy(child: ParsedCert, issuer: ParsedCert): "yes" | "bad-signature" | "name-only" | "no" {
  if (!child.node.checkIssued(issuer.node)) {
    // OpenSSL also refuses an issuer whose key usage forbids signing; tell that case apart.
    return child.node.issuer === issuer.node.subject ? "name-only" : "no";
  }
  try {
    return child.node.verify(issuer.node.publicKey) ? "yes" : "bad-signature";
  } catch {
    return "bad-signature";
  }
}

/**
 * Validates an X.509-SVID chain (leaf first, then any intermediates; a trailing root is
 * tolerated) against the bundle of the leaf's trust domain, at time `now`.
 */
export function validateX509Svid(chain: readonly Uint8Array[] | Uint8Array, bundles: TrustBundleSet, now: Date = new Date()): SvidResult {
  try {
    return validate(chain, bundles, now);
  } catch (e) {
    // Fail closed on anything the decoders throw that the checks above did not anticipate.
    return fail("malformed_certificate", `the certificate chain cannot be processed: ${(e as Error).message}`);
  }
}

function validate(chain: readonly Uint8Array[] | Uint8Array, bundles: TrustBundleSet, now: Date): SvidResult {
  let certs: ParsedCert[];
  try {
    const ders = chain instanceof Uint8Array ? splitDerCertificates(chain) : chain;
    certs = ders.map((d, i) => {
      try {
        return parseCertificate(d);
      } catch (e) {
        throw new Error(`certificate ${i + 1} of the chain: ${(e as Error).message}`);
      }
    });
  } catch (e) {
    return fail("malformed_certificate", (e as Error).message);
  }
  if (certs.length === 0) return fail("empty_chain", "no certificate was presented");
  if (certs.length > MAX_CHAIN_DEPTH + 1) return fail("chain_too_long", `the chain has ${certs.length} certificates; at most ${MAX_CHAIN_DEPTH + 1} are accepted`);

  const leaf = certs[0]!;
  const leafInfo = checkLeaf(leaf);
  if ("ok" in leafInfo) return leafInfo;
  const { spiffeId, trustDomain } = leafInfo;
  const leafTime = checkValidity(leaf, "leaf", now);
  if (leafTime) return leafTime;

  const anchors = bundles.get(trustDomain);
  if (!anchors || anchors.length === 0) {
    return fail("unknown_trust_domain", `no trust bundle for trust domain "${trustDomain}" (SPIFFE ID ${spiffeId}); known: ${[...bundles.keys()].join(", ") || "none"}`);
  }
  let dns: string[];
  try {
    dns = dnsSans(leaf);
  } catch (e) {
    return fail("malformed_certificate", `leaf subject alternative name cannot be decoded: ${(e as Error).message}`);
  }

  const path: ParsedCert[] = [leaf];
  const intermediates = certs.slice(1);
  let current = leaf;
  let validUntil = leaf.asn.notAfter;
  let signatureMismatch = false;
  let signerProblem: SvidError | null = null;
  for (let depth = 0; depth <= MAX_CHAIN_DEPTH; depth++) {
    // Non-self-issued intermediates between `current` and the leaf, for pathLenConstraint.
    const below = path.length - 1;
    for (const anchor of anchors) {
      const r = issuedBy(current, anchor);
      if (r === "bad-signature") signatureMismatch = true;
      if (r === "name-only") signerProblem ??= checkSigner(anchor, "trust bundle", below, now);
      if (r !== "yes") continue;
      // Like OpenSSL, the anchor's own constraints apply too (stricter than RFC 5280 requires).
      const bad = checkSigner(anchor, "trust bundle", below, now) ?? checkNameConstraints(anchor, "trust bundle", trustDomain, dns);
      if (bad) return bad;
      path.push(anchor);
      if (anchor.asn.notAfter < validUntil) validUntil = anchor.asn.notAfter;
      return { ok: true, spiffeId, trustDomain, notAfter: leaf.asn.notAfter, validUntil, path };
    }
    let next: ParsedCert | null = null;
    for (const cand of intermediates) {
      if (path.includes(cand)) continue;
      const r = issuedBy(current, cand);
      if (r === "bad-signature") signatureMismatch = true;
      if (r === "name-only") signerProblem ??= checkSigner(cand, "intermediate", below, now);
      if (r === "yes") {
        next = cand;
        break;
      }
    }
    if (!next) {
      if (signerProblem) return signerProblem;
      if (signatureMismatch) {
        return fail("bad_signature", `the signature of ${current === leaf ? "the leaf" : `intermediate (${describe(current)})`} does not verify with the key of its named issuer`);
      }
      return fail("untrusted_chain", `the chain of ${spiffeId} does not lead to the trust bundle of trust domain "${trustDomain}" (no issuer found for ${current === leaf ? "the leaf" : describe(current)}: "${current.asn.issuer}")`);
    }
    const bad = checkSigner(next, "intermediate", below, now) ?? checkNameConstraints(next, "intermediate", trustDomain, dns);
    if (bad) return bad;
    if (next.asn.notAfter < validUntil) validUntil = next.asn.notAfter;
    path.push(next);
    current = next;
  }
  return fail("chain_too_long", `no trust anchor within ${MAX_CHAIN_DEPTH} intermediates`);
}
