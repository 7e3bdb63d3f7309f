// The byte encodings of the proxy-wasm ABI as Envoy's host produces and parses them:
// header/pair maps (PairsUtil in proxy-wasm-cpp-host), property paths and property values
// (Envoy's serializeValue for CEL values).

export type Pairs = Array<[string, string]>;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** u32 count, count x (u32 key_len, u32 value_len), then `key\0value\0` for each pair (little endian). */
export function encodePairs(pairs: Pairs): Uint8Array {
  const encoded = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)] as const);
  let size = 4;
  for (const [k, v] of encoded) size += 8 + k.length + 1 + v.length + 1;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, encoded.length, true);
  let pos = 4;
  for (const [k, v] of encoded) {
    view.setUint32(pos, k.length, true);
    view.setUint32(pos + 4, v.length, true);
    pos += 8;
  }
  for (const [k, v] of encoded) {
    out.set(k, pos);
    pos += k.length + 1;
    out.set(v, pos);
    pos += v.length + 1;
  }
  return out;
}

/** Envoy's limits on a pairs buffer passed by the module (PROXY_WASM_HOST_PAIRS_MAX_*). */
export const PAIRS_MAX_BYTES = 1024 * 1024;
export const PAIRS_MAX_COUNT = 1024;

/**
 * Parses a pairs buffer like PairsUtil::toPairs: returns null where Envoy would silently
 * return an empty map (truncated, missing NULs, trailing bytes, over the limits), so the
 * harness can flag it. An empty buffer is a valid empty map.
 */
export function decodePairs(bytes: Uint8Array): Pairs | null {
  if (bytes.length === 0) return [];
  if (bytes.length > PAIRS_MAX_BYTES || bytes.length < 4) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (count > PAIRS_MAX_COUNT || 4 + count * 8 > bytes.length) return null;
  const sizes: Array<[number, number]> = [];
  let pos = 4;
  for (let i = 0; i < count; i++) {
    sizes.push([view.getUint32(pos, true), view.getUint32(pos + 4, true)]);
    pos += 8;
  }
  const out: Pairs = [];
  for (const [kl, vl] of sizes) {
    if (pos + kl + 1 > bytes.length || bytes[pos + kl] !== 0) return null;
    const k = dec.decode(bytes.subarray(pos, pos + kl));
    pos += kl + 1;
    if (pos + vl + 1 > bytes.length || bytes[pos + vl] !== 0) return null;
    const v = dec.decode(bytes.subarray(pos, pos + vl));
    pos += vl + 1;
    out.push([k, v]);
  }
  return pos === bytes.length ? out : null;
}

/** A property value as Envoy's attribute context holds it; encoded by propertyBytes. */
export type PropertyValue = string | bigint | boolean | Uint8Array;

/** Strings: raw bytes; integers: 8 bytes little endian; booleans: 1 byte; bytes: as is. */
export function propertyBytes(value: PropertyValue): Uint8Array {
  if (typeof value === "string") return enc.encode(value);
  if (typeof value === "boolean") return Uint8Array.of(value ? 1 : 0);
  if (typeof value === "bigint") {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigInt64(0, value, true);
    return out;
  }
  return value;
}

/** Property paths are segments joined by NUL (no trailing NUL): `connection\0uri_san_peer_certificate`. */
export function propertyPath(dotted: string): string {
  return dotted.split(".").join("\0");
}

export function pathToDotted(raw: Uint8Array): string {
  return dec.decode(raw).split("\0").join(".");
}
