// The text forms of WireGuard keys: 32 bytes as base64 (wg, wg-quick) or hex (the UAPI).
// Only the shape is checked here; key material is made and used by host/mesh.

/** 44 characters: 42 of base64, one whose low bits are zero (32 bytes = 256 bits), and "=". */
const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function isWireGuardKey(text: string): boolean {
  return BASE64_KEY.test(text);
}

/**
 * Anything in a document's text that has the shape of a key: a base64 key, or 64 hex digits
 * (the UAPI form) not introduced by a digest prefix. Used to refuse inline private keys,
 * comments included: only publicKey values may hold such text.
 */
const KEY_SHAPED = /(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=(?![A-Za-z0-9+/=])|(?<![0-9A-Fa-f:])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])/g;

export function keyShapedRanges(text: string, from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const slice = text.slice(from, to);
  for (const m of slice.matchAll(KEY_SHAPED)) out.push([from + m.index, from + m.index + m[0].length]);
  return out;
}

/** Field names that would hold a secret key inline (privateKey, private_key, PresharedKey, ...). */
export const SECRET_FIELD = /^(private|preshared)[-_ ]?key$/i;
