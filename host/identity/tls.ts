// The engine's own identity: where its serving certificate and trust bundles come from
// (SPIRE Workload API, certificate files, or nothing = plaintext on loopback), and how an
// HTTPS server uses them: mTLS options, and in-place rotation via tls.Server#setSecureContext
// so established connections keep going while new handshakes use the new SVID.
import { createHash, createPrivateKey, createPublicKey, constants as cryptoConstants, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PeerCertificate, SecureContextOptions, Server as TlsServer, TLSSocket } from "node:tls";
import type { ServerOptions as HttpsServerOptions } from "node:https";
import type { Socket } from "node:net";
import type { TlsSourceConfig } from "./config.js";
import { derToPem, pemCertificatesToDer } from "./der.js";
import type { IdentityMetrics } from "./metrics.js";
import { buildTrustBundleSet, checkLeaf, parseCertificate, validateX509Svid, type ParsedCert, type TrustBundleSet } from "./svid.js";
import { remoteOf } from "./peer.js";
import { watchX509Svids, type Watch, type WatchOptions, type X509Context } from "./workload-api.js";

export type IdentityMode = "spire" | "files" | "plaintext";

/** The engine's current serving identity. */
export interface ServingIdentity {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly chain: readonly Buffer[];
  readonly privateKey: KeyObject;
  readonly notAfter: Date;
  readonly serialNumber: string;
  readonly bundles: TrustBundleSet;
}

export interface RotateEvent {
  readonly identity: ServingIdentity;
  /** True when the SVID itself changed (false: only the bundles changed). */
  readonly svidChanged: boolean;
  /** Increments on every change of the secure context. */
  readonly generation: number;
}

export interface IdentityStatus {
  readonly mode: IdentityMode;
  /** True when a valid, unexpired SVID is installed (always true in plaintext mode). */
  readonly ready: boolean;
  readonly spiffeId: string | null;
  readonly notAfter: string | null;
  readonly rotations: number;
  readonly lastError: string | null;
}

export type IdentityLog = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface IdentitySource {
  readonly mode: IdentityMode;
  /** Resolves once a serving identity is installed (immediately for files and plaintext). */
  ready(): Promise<void>;
  current(): ServingIdentity | null;
  /** Trust bundles for verifying callers; empty in plaintext mode. */
  bundles(): TrustBundleSet;
  /** Changes whenever the identity or the bundles change; keys peer-verification caches. */
  generation(): number;
  /** cert/key/ca for tls.createSecureContext and setSecureContext; throws before ready(). */
  secureContextOptions(): SecureContextOptions;
  on(event: "rotate", listener: (ev: RotateEvent) => void): () => void;
  status(): IdentityStatus;
  close(): Promise<void>;
}

export interface IdentitySourceOptions {
  readonly metrics?: IdentityMetrics;
  readonly log?: IdentityLog;
  readonly now?: () => Date;
  readonly watch?: WatchOptions;
}

export const PLAINTEXT_WARNING =
  "ZT IS SERVING PLAIN HTTP WITHOUT AUTHENTICATION: neither ZT_SPIRE_SOCKET nor ZT_TLS_CERT/ZT_TLS_KEY/ZT_TLS_BUNDLE is set. " +
  "Callers are not identified, traffic is not encrypted, and the engine listens on loopback only. Never run this way in a cluster.";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Plaintext mode may only bind loopback; throws a clear error for any other host. */
export function assertPlaintextHost(host: string): void {
  if (!LOOPBACK.has(host) && !/^127\.\d+\.\d+\.\d+$/.test(host)) {
    throw new Error(`refusing to serve plain HTTP on "${host}": without an SVID (ZT_SPIRE_SOCKET or ZT_TLS_*) the engine binds loopback only`);
  }
}

function keysMatch(key: KeyObject, leafDer: Buffer): boolean {
  const fromKey = createPublicKey(key).export({ type: "spki", format: "der" });
  const fromCert = createPublicKey({ key: derToPem(leafDer), format: "pem" }).export({ type: "spki", format: "der" });
  return Buffer.compare(fromKey, fromCert) === 0;
}

/** Validates a candidate serving identity exactly like a caller's SVID, and its key pairing. */
function admit(chain: readonly Buffer[], privateKey: KeyObject, bundles: TrustBundleSet, now: Date): ServingIdentity {
  const r = validateX509Svid(chain, bundles, now);
  if (!r.ok) throw new Error(`serving SVID rejected (${r.code}): ${r.error}`);
  if (!keysMatch(privateKey, chain[0]!)) throw new Error(`serving SVID rejected: the private key does not match the certificate of ${r.spiffeId}`);
  return {
    spiffeId: r.spiffeId,
    trustDomain: r.trustDomain,
    chain,
    privateKey,
    notAfter: r.notAfter,
    serialNumber: r.path[0]!.asn.serialNumber,
    bundles,
  };
}

class Source implements IdentitySource {
  readonly mode: IdentityMode;
  private identity: ServingIdentity | null = null;
  private gen = 0;
  private rotations = 0;
  private lastError: string | null = null;
  private lastFullError: string | null = null;
  private listeners = new Set<(ev: RotateEvent) => void>();
  private readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private stoppers: Array<() => void> = [];
  private cachedOptions: SecureContextOptions | null = null;

  constructor(
    mode: IdentityMode,
    private readonly opts: IdentitySourceOptions,
    /** Configured paths and the variables that name them, kept out of status(). */
    private readonly paths: ReadonlyMap<string, string> = new Map(),
  ) {
    this.mode = mode;
    this.readyPromise = new Promise((res) => (this.resolveReady = res));
    if (mode === "plaintext") this.resolveReady();
  }

  private now(): Date {
    return this.opts.now ? this.opts.now() : new Date();
  }

  /**
   * Installs a new identity if it validates; otherwise keeps the old one and records why. A
   * candidate equal to the serving identity changes nothing, but clears the last error: what
   * failed before (a half-written file, a stream error) is fixed.
   */
  install(chain: readonly Buffer[], privateKey: KeyObject, bundleDers: ReadonlyMap<string, readonly Buffer[]>): "installed" | "unchanged" | "rejected" {
    let next: ServingIdentity;
    try {
      next = admit(chain, privateKey, buildTrustBundleSet(bundleDers), this.now());
    } catch (e) {
      this.fail((e as Error).message);
      return "rejected";
    }
    const prev = this.identity;
    this.lastError = null;
    const svidChanged = !prev || Buffer.compare(prev.chain[0]!, next.chain[0]!) !== 0;
    if (prev && !svidChanged && sameBundles(prev.bundles, next.bundles)) return "unchanged";
    this.identity = next;
    this.cachedOptions = null;
    this.gen++;
    if (prev && svidChanged) {
      this.rotations++;
      this.opts.metrics?.svidRotations.inc({ service: next.spiffeId });
    }
    this.opts.metrics?.svidExpiry.set({ service: next.spiffeId }, Math.floor(next.notAfter.getTime() / 1000));
    this.opts.log?.("info", prev ? (svidChanged ? "serving SVID rotated" : "trust bundles updated") : "serving SVID installed", {
      spiffe_id: next.spiffeId,
      serial: next.serialNumber,
      not_after: next.notAfter.toISOString(),
      trust_domains: [...next.bundles.keys()],
    });
    if (!prev) this.resolveReady();
    const ev: RotateEvent = { identity: next, svidChanged, generation: this.gen };
    for (const l of this.listeners) l(ev);
    return "installed";
  }

  /**
   * Records a failure: the log gets the whole message; status() (the plain-HTTP health port)
   * gets it with the configured file and socket paths replaced by their variable names.
   */
  fail(message: string): void {
    let shown = message;
    for (const [path, name] of this.paths) shown = shown.split(`${name} "${path}"`).join(name).split(path).join(name);
    this.lastError = shown;
    this.lastFullError = message;
    this.opts.log?.("error", message);
  }

  /** The last failure as logged (with paths), for start-up errors. */
  lastFailure(): string | null {
    return this.lastFullError;
  }

  addStopper(fn: () => void): void {
    this.stoppers.push(fn);
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }
  current(): ServingIdentity | null {
    return this.identity;
  }
  bundles(): TrustBundleSet {
    return this.identity?.bundles ?? new Map();
  }
  generation(): number {
    return this.gen;
  }
  secureContextOptions(): SecureContextOptions {
    const id = this.identity;
    if (!id) throw new Error(this.mode === "plaintext" ? "plaintext mode has no TLS identity" : "no serving SVID yet (await ready())");
    if (!this.cachedOptions) {
      const ca: string[] = [];
      for (const certs of id.bundles.values()) for (const c of certs) ca.push(derToPem(c.der));
      this.cachedOptions = {
        cert: id.chain.map((d) => derToPem(d)).join(""),
        key: id.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
        ca,
      };
    }
    return this.cachedOptions;
  }
  on(_event: "rotate", listener: (ev: RotateEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  status(): IdentityStatus {
    const id = this.identity;
    const expired = id ? this.now().getTime() > id.notAfter.getTime() : false;
    return {
      mode: this.mode,
      ready: this.mode === "plaintext" || (id !== null && !expired),
      spiffeId: id?.spiffeId ?? null,
      notAfter: id?.notAfter.toISOString() ?? null,
      rotations: this.rotations,
      lastError: expired ? `serving SVID expired at ${id!.notAfter.toISOString()} and no new one arrived${this.lastError ? `; last error: ${this.lastError}` : ""}` : this.lastError,
    };
  }
  async close(): Promise<void> {
    for (const s of this.stoppers) s();
    this.stoppers = [];
    this.listeners.clear();
  }
}

function sameBundles(a: TrustBundleSet, b: TrustBundleSet): boolean {
  if (a.size !== b.size) return false;
  for (const [td, certs] of a) {
    const other = b.get(td);
    if (!other || other.length !== certs.length) return false;
    for (let i = 0; i < certs.length; i++) if (Buffer.compare(certs[i]!.der, other[i]!.der) !== 0) return false;
  }
  return true;
}

function startSpire(src: Source, socketPath: string, opts: IdentitySourceOptions): void {
  const watch: Watch = watchX509Svids(
    socketPath,
    (ctx: X509Context) => {
      const svid = ctx.svids[0]!;
      void src.install(svid.chain, svid.privateKey, ctx.bundles);
    },
    (err) => src.fail(err.message),
    opts.watch,
  );
  src.addStopper(() => watch.close());
}

interface FileSnapshot {
  readonly hash: string;
  readonly chain: Buffer[];
  readonly key: KeyObject;
  readonly caDers: Buffer[];
}

function readFiles(cfg: Extract<TlsSourceConfig, { mode: "files" }>): FileSnapshot {
  const read = (path: string, name: string): string => {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`${name} "${path}": ${err.code ?? err.message}`);
    }
  };
  const certPem = read(cfg.certPath, "ZT_TLS_CERT");
  const keyPem = read(cfg.keyPath, "ZT_TLS_KEY");
  const bundlePem = read(cfg.bundlePath, "ZT_TLS_BUNDLE");
  const chain = pemCertificatesToDer(certPem);
  if (chain.length === 0) throw new Error(`ZT_TLS_CERT "${cfg.certPath}": no PEM CERTIFICATE block`);
  const caDers = pemCertificatesToDer(bundlePem);
  if (caDers.length === 0) throw new Error(`ZT_TLS_BUNDLE "${cfg.bundlePath}": no PEM CERTIFICATE block`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: "pem" });
  } catch (e) {
    throw new Error(`ZT_TLS_KEY "${cfg.keyPath}": not an unencrypted PEM private key: ${(e as Error).message}`);
  }
  const hash = createHash("sha256").update(certPem).update("\0").update(keyPem).update("\0").update(bundlePem).digest("hex");
  return { hash, chain, key, caDers };
}

/** The bundle file belongs to the trust domain of the serving certificate's SPIFFE ID. */
function fileTrustDomain(chain: Buffer[]): string {
  let leaf: ParsedCert;
  try {
    leaf = parseCertificate(chain[0]!);
  } catch (e) {
    throw new Error(`ZT_TLS_CERT: ${(e as Error).message}`);
  }
  const r = checkLeaf(leaf);
  if ("ok" in r) throw new Error(`ZT_TLS_CERT is not a valid X.509-SVID (${r.code}): ${r.error}`);
  return r.trustDomain;
}

function startFiles(src: Source, cfg: Extract<TlsSourceConfig, { mode: "files" }>): void {
  let lastHash = "";
  const load = (): void => {
    const snap = readFiles(cfg);
    if (snap.hash === lastHash) return;
    const td = fileTrustDomain(snap.chain);
    if (src.install(snap.chain, snap.key, new Map([[td, snap.caDers]])) !== "rejected") lastHash = snap.hash;
    else if (!src.current()) throw new Error(src.lastFailure() ?? "certificate files rejected");
  };
  load();
  // cert-manager and similar rewrite the files in place; pick changes up without a restart.
  const timer = setInterval(() => {
    try {
      load();
    } catch (e) {
      // Forget what was read: files put back as they were must be read, and clear the error.
      lastHash = "";
      src.fail(`reloading certificate files: ${(e as Error).message}`);
    }
  }, cfg.reloadIntervalMs);
  timer.unref();
  src.addStopper(() => clearInterval(timer));
}

/**
 * Creates the engine's identity source. Files mode reads and validates the files now and
 * throws on a problem; SPIRE mode connects in the background (await `ready()`).
 */
export function createIdentitySource(cfg: TlsSourceConfig, opts: IdentitySourceOptions = {}): IdentitySource {
  const paths = new Map<string, string>();
  if (cfg.mode === "spire") paths.set(cfg.socketPath, "ZT_SPIRE_SOCKET");
  if (cfg.mode === "files") {
    paths.set(cfg.certPath, "ZT_TLS_CERT");
    paths.set(cfg.keyPath, "ZT_TLS_KEY");
    paths.set(cfg.bundlePath, "ZT_TLS_BUNDLE");
  }
  const src = new Source(cfg.mode, opts, paths);
  if (cfg.mode === "spire") startSpire(src, cfg.socketPath, opts);
  else if (cfg.mode === "files") startFiles(src, cfg);
  else opts.log?.("warn", PLAINTEXT_WARNING);
  return src;
}

/**
 * Secure-context settings of the mTLS listener that must survive every setSecureContext():
 * TLS 1.2+, and no session tickets, so no session is ever resumed and every connection
 * presents (and Node exposes) the client's full certificate chain.
 */
const MTLS_CONTEXT_SETTINGS: SecureContextOptions = {
  minVersion: "TLSv1.2",
  secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
};

/** The secure context of the mTLS listener: the current SVID, bundles and fixed settings. */
export function mtlsSecureContextOptions(source: IdentitySource): SecureContextOptions {
  return { ...source.secureContextOptions(), ...MTLS_CONTEXT_SETTINGS };
}

/**
 * HTTPS options for the engine's API listener: a client certificate is requested from every
 * connection, and OpenSSL verifies it against the bundles, but does not drop the connection
 * itself: the peer verifier (peer.ts, attached to the server) judges every connection right
 * after its handshake, and each request on a connection without a valid X.509-SVID is answered
 * 401 with the rule its certificate breaks (a dropped handshake tells the client nothing), or,
 * for routes whose rule is `own` (the operator proxy's browsers), handed on without an identity.
 */
export function mtlsServerOptions(source: IdentitySource): HttpsServerOptions {
  return { ...mtlsSecureContextOptions(source), requestCert: true, rejectUnauthorized: false };
}

/**
 * Applies every rotation to `server` in place; returns a function that stops doing so.
 * Established connections keep their context; new handshakes get the new one.
 */
export function attachRotation(server: TlsServer, source: IdentitySource, log?: IdentityLog): () => void {
  return source.on("rotate", () => {
    try {
      server.setSecureContext(mtlsSecureContextOptions(source));
    } catch (e) {
      // Keep serving with the previous context rather than dropping the listener.
      log?.("error", `could not apply the rotated SVID: ${(e as Error).message}`);
    }
  });
}

/**
 * Logs every failed TLS handshake (an old protocol version, no shared cipher, a client that
 * hangs up) with OpenSSL's reason and the peer's address: the client only sees an alert.
 * Certificate problems are not handshake failures here: the peer verifier logs them.
 */
export function logHandshakeFailures(server: TlsServer, log: IdentityLog): () => void {
  // A client that breaks off early has closed its TCP socket before the error is reported,
  // and a closed socket no longer knows its peer: remember every address as it connects.
  const addresses = new WeakMap<object, string>();
  const onConnection = (raw: Socket): void => {
    if (raw.remoteAddress !== undefined) addresses.set(raw, raw.remoteAddress);
  };
  const onError = (err: Error & { code?: string }, socket: TLSSocket): void => {
    const verify = socket.authorizationError ? String(socket.authorizationError) : null;
    // `_parent` (not in Node's types) is the TCP socket the TLS socket wraps.
    const raw = (socket as TLSSocket & { _parent?: object })._parent;
    log("warn", "TLS handshake rejected", {
      reason: verify ? `client certificate rejected: ${verify}` : err.message,
      code: verify ?? err.code ?? null,
      remote: remoteOf(socket) ?? (raw ? addresses.get(raw) : undefined) ?? null,
    });
  };
  server.on("connection", onConnection);
  server.on("tlsClientError", onError);
  return () => {
    server.off("connection", onConnection);
    server.off("tlsClientError", onError);
  };
}

/**
 * For clients of a SPIFFE server (the CLI, tests): a `checkServerIdentity` that accepts the
 * server only if its leaf is a well-formed X.509-SVID for `expected` (the chain itself is
 * verified by TLS against the `ca` bundle). Hostnames play no part.
 */
export function spiffeServerIdentity(expected: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    if (!cert || !cert.raw) return new Error("the server presented no certificate");
    let leaf: ParsedCert;
    try {
      leaf = parseCertificate(cert.raw);
    } catch (e) {
      return new Error(`server certificate: ${(e as Error).message}`);
    }
    const r = checkLeaf(leaf);
    if ("ok" in r) return new Error(`server certificate is not a valid X.509-SVID (${r.code}): ${r.error}`);
    if (r.spiffeId !== expected) return new Error(`server is ${r.spiffeId}, expected ${expected}`);
    return undefined;
  };
}
