// IP addresses and CIDR blocks as numbers, for the mesh's containment and overlap checks.
// IPv4 and IPv6 are kept apart: blocks of different families never overlap.
import { isIP } from "node:net";

export interface Cidr {
  readonly family: 4 | 6;
  /** The network address (host bits zero). */
  readonly network: bigint;
  readonly prefix: number;
  /** Canonical text: network address / prefix. */
  readonly text: string;
}

function v4(text: string): bigint {
  return text.split(".").reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

function v6(text: string): bigint {
  // An embedded dotted IPv4 tail (::ffff:192.0.2.1) becomes two hextets.
  let t = text;
  const dot = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (dot) {
    const n = v4(dot[1]!);
    t = t.slice(0, dot.index) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = t.includes("::") ? t.split("::") : [t, undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...fill, ...right].reduce((n, h) => (n << 16n) | BigInt(parseInt(h, 16)), 0n);
}

/** The address as a number and its family, or null when `text` is not an IP address. */
export function parseIp(text: string): { family: 4 | 6; value: bigint } | null {
  const family = isIP(text);
  if (family === 4) return { family, value: v4(text) };
  if (family === 6) return { family, value: v6(text) };
  return null;
}

export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  const hextets = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run of zero hextets (two or more) becomes "::" (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

function bitsOf(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function mask(family: 4 | 6, prefix: number): bigint {
  const bits = BigInt(bitsOf(family));
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
}

export type CidrParse = { ok: true; cidr: Cidr } | { ok: false; error: string };

/**
 * `addr/prefix`. Host bits must be zero: WireGuard stores the network address, so a block
 * written with host bits would not read back as written (and usually is a typo).
 */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf("/");
  if (slash < 0) return { ok: false, error: "is not a CIDR block (address/prefix, e.g. 10.244.0.0/16)" };
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip) return { ok: false, error: "is not a CIDR block: the address part is not an IPv4 or IPv6 address" };
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > bitsOf(ip.family)) {
    return { ok: false, error: `is not a CIDR block: the prefix must be 0-${bitsOf(ip.family)}` };
  }
  const network = ip.value & mask(ip.family, prefix);
  const canonical = `${formatIp(ip.family, network)}/${prefix}`;
  if (network !== ip.value) return { ok: false, error: `has host bits set: the block is ${canonical}` };
  return { ok: true, cidr: { family: ip.family, network, prefix, text: canonical } };
}

/** The single-address block of an address (/32 or /128). */
export function hostCidr(family: 4 | 6, value: bigint): Cidr {
  const prefix = bitsOf(family);
  return { family, network: value, prefix, text: `${formatIp(family, value)}/${prefix}` };
}

export function contains(block: Cidr, family: 4 | 6, value: bigint): boolean {
  return block.family === family && (value & mask(family, block.prefix)) === block.network;
}

/** Two blocks overlap exactly when the wider one contains the other's network address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const wide = a.prefix <= b.prefix ? a : b;
  const narrow = wide === a ? b : a;
  return contains(wide, narrow.family, narrow.network);
}

/** The network's first and last addresses (IPv4 blocks wider than /31 reserve them). */
export function isReservedHost(block: Cidr, value: bigint): boolean {
  if (block.family !== 4 || block.prefix >= 31) return false;
  const last = block.network | (((1n << 32n) - 1n) ^ mask(4, block.prefix));
  return value === block.network || value === last;
}
