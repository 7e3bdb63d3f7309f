// Certificate containers: the Workload API hands out DER certificates concatenated
// (x509_svid, bundle), files hold PEM. Both become lists of single-certificate DER buffers.

/** Largest DER certificate we accept; real SVIDs are under 2 KiB. */
export const MAX_CERT_BYTES = 64 * 1024;

/**
 * Splits concatenated DER certificates. Each must be a definite-length SEQUENCE (tag 0x30);
 * anything else is an error rather than a silent truncation.
 */
export function splitDerCertificates(der: Uint8Array): Buffer[] {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] !== 0x30) throw new Error(`DER certificate ${out.length + 1} at byte ${pos}: expected a SEQUENCE (0x30), found 0x${(buf[pos] ?? 0).toString(16)}`);
    if (pos + 2 > buf.length) throw new Error(`DER certificate ${out.length + 1} at byte ${pos}: truncated length`);
    const first = buf[pos + 1]!;
    let len: number;
    let header: number;
    if (first < 0x80) {
      len = first;
      header = 2;
    } else {
      const n = first & 0x7f;
      // 0x80 is the indefinite form, which DER forbids; more than 3 length bytes is over 16 MiB.
      if (n === 0 || n > 3) throw new Error(`DER certificate ${out.length + 1} at byte ${pos}: invalid length encoding`);
      if (pos + 2 + n > buf.length) throw new Error(`DER certificate ${out.length + 1} at byte ${pos}: truncated length`);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i]!;
      header = 2 + n;
    }
    const end = pos + header + len;
    if (end > buf.length) throw new Error(`DER certificate ${out.length + 1} at byte ${pos}: truncated (needs ${header + len} bytes, ${buf.length - pos} left)`);
    if (header + len > MAX_CERT_BYTES) throw new Error(`DER certificate ${out.length + 1} is larger than ${MAX_CERT_BYTES} bytes`);
    out.push(buf.subarray(pos, end));
    pos = end;
  }
  return out;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/** Every CERTIFICATE block of a PEM text, as DER. Other block types are ignored. */
export function pemCertificatesToDer(pem: string): Buffer[] {
  const out: Buffer[] = [];
  for (const m of pem.matchAll(PEM_CERT)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));
  return out;
}

export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}
