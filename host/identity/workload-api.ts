// SPIFFE Workload API client (spiffe/standards SPIFFE_Workload_API.md, X.509-SVID profile):
// a server-streaming gRPC call `/SpiffeWorkloadAPI/FetchX509SVID` over the SPIRE agent's unix
// socket. Every message on the stream is the complete current state (SVIDs, bundle, federated
// bundles); the agent sends a new one when it rotates the SVID (SPIRE: at half of its TTL) or
// a bundle changes. The stream is reopened with backoff whenever it fails or ends.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createPrivateKey, type KeyObject } from "node:crypto";
import { parseSpiffeId } from "../../compiler/spiffe.js";
import { splitDerCertificates } from "./der.js";

/** The spec requires this metadata on every call; agents reject calls without it. */
export const WORKLOAD_API_HEADER = "workload.spiffe.io";

/**
 * The X.509 part of workload.proto (no package, so the service is `SpiffeWorkloadAPI`), in
 * protobufjs JSON form so nothing but compiled code has to ship. Field numbers are the spec's;
 * test/identity/fixtures/workload.proto is the independent copy the test agent is built from.
 */
const WORKLOAD_API_DESCRIPTOR = {
  nested: {
    X509SVIDRequest: { fields: {} },
    X509SVIDResponse: {
      fields: {
        svids: { rule: "repeated", type: "X509SVID", id: 1 },
        crl: { rule: "repeated", type: "bytes", id: 2 },
        federated_bundles: { keyType: "string", type: "bytes", id: 3 },
      },
    },
    X509SVID: {
      fields: {
        spiffe_id: { type: "string", id: 1 },
        x509_svid: { type: "bytes", id: 2 },
        x509_svid_key: { type: "bytes", id: 3 },
        bundle: { type: "bytes", id: 4 },
        hint: { type: "string", id: 5 },
      },
    },
    SpiffeWorkloadAPI: {
      methods: {
        FetchX509SVID: { requestType: "X509SVIDRequest", responseType: "X509SVIDResponse", responseStream: true },
      },
    },
  },
};

/** One SVID of the workload, decoded. */
export interface WorkloadSvid {
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** DER certificates, leaf first. */
  readonly chain: readonly Buffer[];
  readonly privateKey: KeyObject;
  /** The CA certificates of the SVID's own trust domain. */
  readonly bundle: readonly Buffer[];
  readonly hint: string;
}

/** One X509SVIDResponse, decoded. */
export interface X509Context {
  /** Non-empty; the first one is the default identity (spec: clients use the first). */
  readonly svids: readonly WorkloadSvid[];
  /** Trust bundles by trust domain name: the SVIDs' own domains and the federated ones. */
  readonly bundles: ReadonlyMap<string, readonly Buffer[]>;
  /** DER CRLs as sent; not enforced here (SPIRE does not issue them). */
  readonly crl: readonly Buffer[];
}

interface RawSvid {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
interface RawResponse {
  svids: RawSvid[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}

/** Turns a wire message into an X509Context; throws with a message naming the faulty field. */
export function decodeX509SvidResponse(msg: RawResponse): X509Context {
  if (!msg.svids || msg.svids.length === 0) throw new Error("X509SVIDResponse.svids is empty: the agent issued no identity");
  const bundles = new Map<string, Buffer[]>();
  const svids = msg.svids.map((s, i): WorkloadSvid => {
    const at = `X509SVIDResponse.svids[${i}]`;
    const id = parseSpiffeId(s.spiffe_id);
    if (!id.ok) throw new Error(`${at}.spiffe_id "${s.spiffe_id}": ${id.error}`);
    let chain: Buffer[];
    let bundle: Buffer[];
    try {
      chain = splitDerCertificates(s.x509_svid);
    } catch (e) {
      throw new Error(`${at}.x509_svid: ${(e as Error).message}`);
    }
    if (chain.length === 0) throw new Error(`${at}.x509_svid is empty`);
    try {
      bundle = splitDerCertificates(s.bundle);
    } catch (e) {
      throw new Error(`${at}.bundle: ${(e as Error).message}`);
    }
    if (bundle.length === 0) throw new Error(`${at}.bundle is empty`);
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: s.x509_svid_key, format: "der", type: "pkcs8" });
    } catch (e) {
      throw new Error(`${at}.x509_svid_key is not an unencrypted PKCS#8 DER key: ${(e as Error).message}`);
    }
    const td = id.value.trustDomain;
    if (!bundles.has(td)) bundles.set(td, bundle);
    return { spiffeId: s.spiffe_id, trustDomain: td, chain, privateKey, bundle, hint: s.hint ?? "" };
  });
  for (const [key, der] of Object.entries(msg.federated_bundles ?? {})) {
    const id = parseSpiffeId(key);
    if (!id.ok) throw new Error(`X509SVIDResponse.federated_bundles key "${key}": ${id.error}`);
    try {
      const certs = splitDerCertificates(der);
      // The workload's own domain is authoritative; a federated entry never overrides it.
      if (!bundles.has(id.value.trustDomain)) bundles.set(id.value.trustDomain, certs);
    } catch (e) {
      throw new Error(`X509SVIDResponse.federated_bundles["${key}"]: ${(e as Error).message}`);
    }
  }
  return { svids, bundles, crl: msg.crl ?? [] };
}

export interface WatchOptions {
  /** First reconnect delay; doubles up to backoffMaxMs. Default 200 ms. */
  readonly backoffMinMs?: number;
  /** Default 10 s. */
  readonly backoffMaxMs?: number;
}

export interface Watch {
  close(): void;
}

/** Accepts "/path", "unix:/path" or "unix:///path" and returns the gRPC target. */
export function workloadApiTarget(socket: string): string {
  const path = socket.startsWith("unix://") ? socket.slice("unix://".length) : socket.startsWith("unix:") ? socket.slice("unix:".length) : socket;
  if (!path.startsWith("/")) throw new Error(`Workload API socket "${socket}" must be an absolute path (or unix:///absolute/path)`);
  return `unix://${path}`;
}

type ServiceCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client & {
  FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<RawResponse>;
};

let serviceCtor: ServiceCtor | null = null;
function workloadService(): ServiceCtor {
  if (!serviceCtor) {
    // protobufjs types map fields and methods more narrowly than its JSON format allows.
    const json = WORKLOAD_API_DESCRIPTOR as unknown as Parameters<typeof protoLoader.fromJSON>[0];
    const def = protoLoader.fromJSON(json, { keepCase: true, defaults: true, arrays: true, objects: true });
    serviceCtor = grpc.loadPackageDefinition(def)["SpiffeWorkloadAPI"] as unknown as ServiceCtor;
  }
  return serviceCtor;
}

/**
 * Streams X.509 contexts from the Workload API at `socketPath`. `onUpdate` gets every decoded
 * message; `onError` every failure (stream error, end, undecodable message), after which the
 * stream is reopened with exponential backoff until `close()`.
 */
export function watchX509Svids(
  socketPath: string,
  onUpdate: (ctx: X509Context) => void,
  onError: (err: Error) => void,
  options: WatchOptions = {},
): Watch {
  const min = options.backoffMinMs ?? 200;
  const max = options.backoffMaxMs ?? 10_000;
  const Ctor = workloadService();
  const client = new Ctor(workloadApiTarget(socketPath), grpc.credentials.createInsecure(), {
    // The agent socket is local; keep the channel's own reconnect quick so our backoff rules.
    "grpc.initial_reconnect_backoff_ms": min,
    "grpc.max_reconnect_backoff_ms": max,
  });
  let closed = false;
  let delay = min;
  let timer: NodeJS.Timeout | null = null;
  let call: grpc.ClientReadableStream<RawResponse> | null = null;

  const retry = (err: Error): void => {
    if (closed) return;
    call = null;
    onError(err);
    timer = setTimeout(open, delay);
    delay = Math.min(max, delay * 2);
  };

  function open(): void {
    timer = null;
    if (closed) return;
    const md = new grpc.Metadata();
    md.set(WORKLOAD_API_HEADER, "true");
    const c = client.FetchX509SVID({}, md);
    call = c;
    let failed = false;
    c.on("data", (msg: RawResponse) => {
      let ctx: X509Context;
      try {
        ctx = decodeX509SvidResponse(msg);
      } catch (e) {
        onError(e as Error);
        return;
      }
      delay = min;
      onUpdate(ctx);
    });
    c.on("error", (e: grpc.ServiceError) => {
      if (failed || closed) return;
      failed = true;
      retry(new Error(`Workload API ${socketPath}: ${e.code === grpc.status.CANCELLED ? "cancelled" : e.message}`));
    });
    c.on("end", () => {
      if (failed || closed) return;
      failed = true;
      retry(new Error(`Workload API ${socketPath}: the agent ended the FetchX509SVID stream`));
    });
  }

  open();
  return {
    close(): void {
      closed = true;
      if (timer) clearTimeout(timer);
      call?.cancel();
      client.close();
    },
  };
}
