// A SPIRE-agent stand-in for tests: a real gRPC server on a unix socket, built from
// fixtures/workload.proto, that behaves as the Workload API spec says (requires the
// `workload.spiffe.io: true` metadata, streams the current state to each caller at once and
// every change after) and lets the test rotate SVIDs and bundles.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { rmSync } from "node:fs";
import type { TestCa, TestSvid } from "./pki.js";

const PROTO = fileURLToPath(new URL("./fixtures/workload.proto", import.meta.url));

export interface WireSvid {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
export interface WireResponse {
  svids: WireSvid[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}

export function svidMessage(spiffeId: string, svid: TestSvid, bundle: readonly TestCa[], hint = ""): WireSvid {
  return {
    spiffe_id: spiffeId,
    x509_svid: Buffer.concat(svid.chainDer),
    x509_svid_key: svid.keyPkcs8,
    bundle: Buffer.concat(bundle.map((c) => c.der)),
    hint,
  };
}

export interface FakeAgent {
  readonly socketPath: string;
  /** Metadata values of `workload.spiffe.io` seen on each call, in order. */
  readonly headers: string[];
  /** Number of FetchX509SVID streams opened. */
  calls(): number;
  /** Makes `resp` the current state and sends it on every open stream. */
  push(resp: WireResponse): void;
  /** Ends every open stream (an agent restart, as far as clients can tell). */
  endStreams(): void;
  close(): Promise<void>;
}

function loadService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true, arrays: true, objects: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as Record<string, { service: grpc.ServiceDefinition }>;
  return pkg["SpiffeWorkloadAPI"]!.service;
}

export async function startFakeAgent(socketPath: string, initial: WireResponse | null = null): Promise<FakeAgent> {
  rmSync(socketPath, { force: true });
  let current = initial;
  let calls = 0;
  const headers: string[] = [];
  const streams = new Set<grpc.ServerWritableStream<object, WireResponse>>();
  const server = new grpc.Server();
  server.addService(loadService(), {
    FetchX509SVID(call: grpc.ServerWritableStream<object, WireResponse>) {
      calls++;
      const h = call.metadata.get("workload.spiffe.io");
      headers.push(h.length ? String(h[0]) : "");
      if (h.length !== 1 || String(h[0]) !== "true") {
        call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: "security header missing from request" });
        return;
      }
      streams.add(call);
      call.on("cancelled", () => streams.delete(call));
      call.on("close", () => streams.delete(call));
      if (current) call.write(current);
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  return {
    socketPath,
    headers,
    calls: () => calls,
    push(resp: WireResponse): void {
      current = resp;
      for (const s of streams) s.write(resp);
    },
    endStreams(): void {
      for (const s of streams) s.end();
      streams.clear();
    },
    close(): Promise<void> {
      for (const s of streams) s.end();
      streams.clear();
      return new Promise((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
