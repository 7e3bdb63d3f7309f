// Who is on the other end of a TLS connection to the API port: validated once per connection,
// right after the handshake, as an X.509-SVID (svid.ts: the leaf rules, and the chain pinned to
// the bundle of the leaf's own trust domain, so a CA of one domain cannot vouch for another).
// OpenSSL's verdict (socket.authorized) must agree. The verdict is kept on the connection until
// its path expires or the bundles change; every request on the connection reads it from there.
import { createHash } from "node:crypto";
import type { Server as TlsServer, TLSSocket, DetailedPeerCertificate } from "node:tls";
import { validateX509Svid, type SvidErrorCode, type SvidOk, type TrustBundleSet } from "./svid.js";

export interface BundleProvider {
  bundles(): TrustBundleSet;
  generation(): number;
}

/** Why a connection holds no valid X.509-SVID: the SVID rule broken, or the TLS-level problem. */
export type PeerRejectCode = SvidErrorCode | "no_client_certificate";

export interface PeerRejected {
  readonly ok: false;
  readonly code: PeerRejectCode;
  /** Says what is wrong with the client's own certificate; safe to tell the client. */
  readonly error: string;
}

export type PeerVerdict = SvidOk | PeerRejected;

/** Told once per connection that fails, with its address (the caller only sees its 401s). */
export type PeerRejectLog = (fields: { remote: string | null; code: PeerRejectCode; reason: string }) => void;

export interface PeerVerifier {
  /**
   * The verdict of `socket`'s peer: computed at the handshake by `attach`, or now for a socket
   * `attach` did not see; recomputed only when the path expired or the bundles changed.
   */
  verify(socket: TLSSocket): PeerVerdict;
  /** Validates every connection of `server` right after its handshake; returns a detach function. */
  attach(server: TlsServer): () => void;
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

/**
 * The peer's address. A TLS socket that failed may have lost its handle already; the raw TCP
 * socket beneath it (`_parent`, not in Node's types) still knows.
 */
export function remoteOf(socket: TLSSocket): string | null {
  return socket.remoteAddress ?? (socket as TLSSocket & { _parent?: { remoteAddress?: string } })._parent?.remoteAddress ?? null;
}

/** Verdicts by presented chain, across connections; bounded, successes only. */
const VERDICT_CACHE_MAX = 1024;

interface Cached {
  readonly generation: number;
  readonly until: number;
  readonly result: PeerVerdict;
}

export function createPeerVerifier(source: BundleProvider, now: () => Date = () => new Date(), onReject?: PeerRejectLog): PeerVerifier {
  const cache = new WeakMap<TLSSocket, Cached>();
  // A workload reconnects with the same SVID for its whole TTL; one chain check per SVID and
  // bundle generation is enough. Only successes are kept: they hold until the path expires.
  const byChain = new Map<string, Cached>();
  const validateChain = (chain: Buffer[], t: Date, gen: number): PeerVerdict => {
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

  const judge = (socket: TLSSocket, t: Date, gen: number): PeerVerdict => {
    const chain = peerChainDer(socket);
    if (chain.length === 0) return { ok: false, code: "no_client_certificate", error: "the connection presented no client certificate; the API port needs an X.509-SVID" };
    // Our rules first: they name what is wrong (OpenSSL's codes are coarser).
    const ours = validateChain(chain, t, gen);
    if (!ours.ok || socket.authorized) return ours;
    // Both must accept: a disagreement fails closed, with OpenSSL's reason.
    return { ok: false, code: "untrusted_chain", error: `the TLS layer did not verify the client certificate (${String(socket.authorizationError)})` };
  };

  const verify = (socket: TLSSocket): PeerVerdict => {
    const t = now();
    const gen = source.generation();
    const hit = cache.get(socket);
    if (hit && hit.generation === gen && t.getTime() <= hit.until) return hit.result;
    const result = judge(socket, t, gen);
    // A failure stays until the bundles change; a success until its path expires.
    cache.set(socket, { generation: gen, until: result.ok ? result.validUntil.getTime() : Number.MAX_SAFE_INTEGER, result });
    if (!result.ok && (hit === undefined || hit.result.ok)) onReject?.({ remote: remoteOf(socket), code: result.code, reason: result.error });
    return result;
  };

  return {
    verify,
    attach(server: TlsServer): () => void {
      // Runs after the HTTP layer's own listener has taken the socket, before any of its bytes are read.
      const onSecure = (socket: TLSSocket): void => void verify(socket);
      server.on("secureConnection", onSecure);
      return () => server.off("secureConnection", onSecure);
    },
  };
}
