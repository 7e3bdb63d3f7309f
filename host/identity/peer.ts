// The caller's SPIFFE ID from its TLS connection. OpenSSL has already checked at the handshake
// that the client certificate chains to some bundle (any trust domain); this adds the X.509-SVID
// rules and pins the chain to the bundle of the leaf's own trust domain, so a CA of one domain
// cannot vouch for an ID in another. The verdict is cached per connection until the path
// expires or the bundles change (a keep-alive connection outliving its certificate is caught).
import { createHash } from "node:crypto";
import type { TLSSocket, DetailedPeerCertificate } from "node:tls";
import { validateX509Svid, type SvidResult, type TrustBundleSet } from "./svid.js";

export interface BundleProvider {
  bundles(): TrustBundleSet;
  generation(): number;
}

export interface PeerVerifier {
  /** Validates the peer of `socket`; a socket without a verified client certificate fails. */
  verify(socket: TLSSocket): SvidResult;
}

/** The certificate chain the peer presented, leaf first, as DER (trust-store roots dropped later by path building). */
export function peerChainDer(socket: TLSSocket): Buffer[] {
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | Record<string, never>;
  const out: Buffer[] = [];
  let cur: DetailedPeerCertificate | undefined = "raw" in leaf ? (leaf as DetailedPeerCertificate) : undefined;
  const seen = new Set<DetailedPeerCertificate>();
  while (cur && cur.raw && !seen.has(cur)) {
    seen.add(cur);
    out.push(cur.raw);
    // Node links a self-signed root to itself; stop there.
    cur = cur.issuerCertificate && cur.issuerCertificate !== cur ? cur.issuerCertificate : undefined;
  }
  return out;
}

/** Verdicts by presented chain, across connections; bounded, successes only. */
const VERDICT_CACHE_MAX = 1024;

interface Cached {
  readonly generation: number;
  readonly until: number;
  readonly result: SvidResult;
}

export function createPeerVerifier(source: BundleProvider, now: () => Date = () => new Date()): PeerVerifier {
  const cache = new WeakMap<TLSSocket, Cached>();
  // A workload reconnects with the same SVID for its whole TTL; one chain check per SVID and
  // bundle generation is enough. Only successes are kept: they hold until the path expires.
  const byChain = new Map<string, Cached>();
  const validateChain = (chain: Buffer[], t: Date, gen: number): SvidResult => {
    const h = createHash("sha256");
    for (const c of chain) h.update(c);
    const key = h.digest("base64");
    const hit = byChain.get(key);
    if (hit && hit.generation === gen && t.getTime() <= hit.until) return hit.result;
    const result = validateX509Svid(chain, source.bundles(), t);
    if (result.ok) {
      byChain.delete(key);
      byChain.set(key, { generation: gen, until: result.validUntil.getTime(), result });
      if (byChain.size > VERDICT_CACHE_MAX) byChain.delete(byChain.keys().next().value!);
    }
    return result;
  };
  return {
    verify(socket: TLSSocket): SvidResult {
      const t = now();
      const gen = source.generation();
      const hit = cache.get(socket);
      if (hit && hit.generation === gen && t.getTime() <= hit.until) return hit.result;
      let result: SvidResult;
      if (!socket.authorized) {
        // Only reachable when the server was built without rejectUnauthorized: fail closed anyway.
        const why = socket.authorizationError ? String(socket.authorizationError) : "no client certificate";
        result = { ok: false, code: "untrusted_chain", error: `the TLS client certificate was not verified: ${why}` };
      } else {
        const chain = peerChainDer(socket);
        result = chain.length === 0 ? { ok: false, code: "empty_chain", error: "the client presented no certificate" } : validateChain(chain, t, gen);
      }
      // A failure stays cached only until the bundles change; a success until its path expires.
      const until = result.ok ? result.validUntil.getTime() : Number.MAX_SAFE_INTEGER;
      cache.set(socket, { generation: gen, until, result });
      return result;
    },
  };
}
