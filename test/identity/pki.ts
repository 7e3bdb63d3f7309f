// A real test PKI: ECDSA P-256 CAs and X.509-SVIDs made with @peculiar/x509 over WebCrypto,
// with knobs to break each X.509-SVID rule.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import { NameConstraints, GeneralSubtrees, GeneralSubtree, GeneralName } from "@peculiar/asn1-x509";
import { webcrypto, randomBytes } from "node:crypto";

// Node's WebCrypto is the DOM Crypto @peculiar/x509 is typed against, but this project has no DOM lib.
x509.cryptoProvider.set(webcrypto as never);

const EC_KEY = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

export interface TestCa {
  readonly trustDomain: string;
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
  readonly der: Buffer;
  readonly pem: string;
  /** The CA that signed this one; null for a self-signed root. */
  readonly issuer: TestCa | null;
}

export interface TestSvid {
  readonly leaf: x509.X509Certificate;
  /** Leaf first, then the intermediates up to (not including) the root. */
  readonly chainDer: Buffer[];
  readonly keyPkcs8: Buffer;
  readonly certPem: string;
  readonly keyPem: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString("hex");
}

function pemOf(der: Buffer, label: string): string {
  return `-----BEGIN ${label}-----\n${der.toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

export interface CaOptions {
  readonly trustDomain: string;
  readonly name?: string;
  readonly issuer?: TestCa;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly pathLength?: number;
  readonly ca?: boolean;
  readonly keyUsage?: number;
  /** URI name constraints (RFC 5280 host form, e.g. "hanzo.ai" or ".example.com"). */
  readonly permittedUris?: readonly string[];
  readonly excludedUris?: readonly string[];
}

function nameConstraintsExt(permitted: readonly string[] = [], excluded: readonly string[] = []): x509.Extension {
  const subtrees = (list: readonly string[]): GeneralSubtrees | undefined =>
    list.length ? new GeneralSubtrees(list.map((u) => new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: u }) }))) : undefined;
  const nc = new NameConstraints({ permittedSubtrees: subtrees(permitted), excludedSubtrees: subtrees(excluded) });
  return new x509.Extension("2.5.29.30", true, AsnConvert.serialize(nc));
}

export async function createCa(opts: CaOptions): Promise<TestCa> {
  const keys = await keyPair();
  const now = Date.now();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(opts.ca ?? true, opts.pathLength, true),
    new x509.KeyUsagesExtension(opts.keyUsage ?? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${opts.trustDomain}` }]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (opts.permittedUris || opts.excludedUris) extensions.push(nameConstraintsExt(opts.permittedUris, opts.excludedUris));
  const name = `CN=${opts.name ?? `${opts.trustDomain} test CA`}, O=SPIFFE`;
  const common = {
    serialNumber: serial(),
    notBefore: opts.notBefore ?? new Date(now - 3600_000),
    notAfter: opts.notAfter ?? new Date(now + 24 * 3600_000),
    signingAlgorithm: SIGN,
  };
  let cert: x509.X509Certificate;
  if (opts.issuer) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.keys.publicKey));
    cert = await x509.X509CertificateGenerator.create({
      ...common,
      subject: name,
      issuer: opts.issuer.cert.subject,
      publicKey: keys.publicKey,
      signingKey: opts.issuer.keys.privateKey,
      extensions,
    });
  } else {
    cert = await x509.X509CertificateGenerator.createSelfSigned({ ...common, name, keys, extensions });
  }
  const der = Buffer.from(cert.rawData);
  return { trustDomain: opts.trustDomain, cert, keys, der, pem: pemOf(der, "CERTIFICATE"), issuer: opts.issuer ?? null };
}

export interface SvidOptions {
  readonly uris?: readonly string[];
  readonly dns?: readonly string[];
  /** IP address SANs (e.g. "127.0.0.1" for a test server reached by address). */
  readonly ips?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** TTL in ms from now when notAfter is not given (default 1 hour, the seed's SVID TTL). */
  readonly ttlMs?: number;
  readonly ca?: boolean;
  /** Omit basic constraints entirely. */
  readonly noBasicConstraints?: boolean;
  /** Key usage flags; null omits the extension. */
  readonly keyUsage?: number | null;
  readonly keyUsageCritical?: boolean;
  /** Extended key usages; null omits the extension. */
  readonly eku?: readonly string[] | null;
  /** Sign with this key instead of the CA's (a forged signature under the CA's name). */
  readonly signingKey?: webcrypto.CryptoKey;
  readonly extraExtensions?: readonly x509.Extension[];
}

export async function issueSvid(ca: TestCa, spiffeId: string | null, opts: SvidOptions = {}): Promise<TestSvid> {
  const keys = await keyPair();
  const now = Date.now();
  const uris = opts.uris ?? (spiffeId ? [spiffeId] : []);
  const names: x509.JsonGeneralNames = [...uris.map((u) => ({ type: "url" as const, value: u })), ...(opts.dns ?? []).map((d) => ({ type: "dns" as const, value: d })), ...(opts.ips ?? []).map((ip) => ({ type: "ip" as const, value: ip }))];
  const extensions: x509.Extension[] = [];
  if (!opts.noBasicConstraints) extensions.push(new x509.BasicConstraintsExtension(opts.ca ?? false, undefined, true));
  if (opts.keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(opts.keyUsage ?? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, opts.keyUsageCritical ?? true));
  if (opts.eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension([...(opts.eku ?? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth])], false));
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, true));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey));
  extensions.push(...(opts.extraExtensions ?? []));
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "O=SPIFFE",
    issuer: ca.cert.subject,
    notBefore: opts.notBefore ?? new Date(now - 60_000),
    notAfter: opts.notAfter ?? new Date(now + (opts.ttlMs ?? 3600_000)),
    signingAlgorithm: SIGN,
    publicKey: keys.publicKey,
    signingKey: opts.signingKey ?? ca.keys.privateKey,
    extensions,
  });
  const leafDer = Buffer.from(leaf.rawData);
  const chainDer = [leafDer, ...intermediatesOf(ca).map((c) => c.der)];
  const keyPkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return {
    leaf,
    chainDer,
    keyPkcs8,
    certPem: chainDer.map((d) => pemOf(d, "CERTIFICATE")).join(""),
    keyPem: pemOf(keyPkcs8, "PRIVATE KEY"),
  };
}

/** The intermediates from `ca` up to, not including, its self-signed root. */
export function intermediatesOf(ca: TestCa): TestCa[] {
  const out: TestCa[] = [];
  for (let cur: TestCa = ca; cur.issuer !== null; cur = cur.issuer) out.push(cur);
  return out;
}
