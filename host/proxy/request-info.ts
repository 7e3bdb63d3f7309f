// Who sent a request and under which public URL, as the proxy must see it behind a load
// balancer: X-Forwarded-For/-Proto/-Host are believed only from the configured proxies
// (ZT_PROXY_TRUSTED_PROXIES); from anyone else they are ignored (and stripped before forwarding).
import type { IncomingHttpHeaders } from "node:http";
import { type BlockList, isIPv6 } from "node:net";

export interface RequestInfo {
  /** The client's address: the peer, or the last untrusted hop of X-Forwarded-For behind trusted proxies. */
  readonly remote: string;
  /** The public scheme and authority (host[:port]) the client used, e.g. for redirect URIs. */
  readonly proto: "https" | "http";
  readonly authority: string;
  /** The lower-case host name without port: the route key. */
  readonly host: string;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function trusted(list: BlockList | null, addr: string): boolean {
  return list !== null && addr !== "" && list.check(addr, isIPv6(addr) ? "ipv6" : "ipv4");
}

/** Strips an IPv4-mapped IPv6 prefix so "::ffff:10.0.0.1" matches IPv4 rules and reads naturally. */
function plain(addr: string): string {
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

/** The host name of an authority ("Example.COM:8054" -> "example.com"; "[::1]:1" -> "::1"). */
export function hostOf(authority: string): string {
  const a = authority.trim().toLowerCase();
  if (a.startsWith("[")) return a.slice(1, a.indexOf("]") >= 0 ? a.indexOf("]") : undefined);
  const colon = a.lastIndexOf(":");
  const h = colon >= 0 ? a.slice(0, colon) : a;
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

export function requestInfo(headers: IncomingHttpHeaders, peer: string | undefined, proxies: BlockList | null, tls: boolean): RequestInfo {
  let remote = plain(peer ?? "");
  let proto: "https" | "http" = tls ? "https" : "http";
  let authority = first(headers.host) ?? "";
  if (trusted(proxies, remote)) {
    // Walk X-Forwarded-For from the right: the first address that is not a trusted proxy is the client.
    const hops = (first(headers["x-forwarded-for"]) ?? "").split(",").map((s) => plain(s.trim())).filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      remote = hops[i]!;
      if (!trusted(proxies, remote)) break;
    }
    const fp = first(headers["x-forwarded-proto"])?.split(",")[0]?.trim().toLowerCase();
    if (fp === "https" || fp === "http") proto = fp;
    const fh = first(headers["x-forwarded-host"])?.split(",")[0]?.trim();
    if (fh) authority = fh;
  }
  return { remote, proto, authority, host: hostOf(authority) };
}
