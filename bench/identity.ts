// What checking identity at the connection costs (docs/identity.md, "Callers"): the X.509-SVID
// verdict of a new connection (a never-seen chain, and a chain seen on an earlier connection),
// the per-request lookup on a connection already judged, and the identity gate in front of a
// route (plaintext and mTLS callers) against the same route without the gate, in the same run.
import "reflect-metadata";
import type { TLSSocket } from "node:tls";
import { Hono } from "hono";
import type { EngineEnv } from "../host/http/context.js";
import { identityGate } from "../host/http/identity-gate.js";
import { routeRules, type RouteRules } from "../host/http/route-identity.js";
import { silentLogger } from "../host/common/logger.js";
import { createCallerAuth } from "../host/identity/caller.js";
import { createPeerVerifier } from "../host/identity/peer.js";
import { buildTrustBundleSet } from "../host/identity/svid.js";
import { createCa, issueSvid, type TestSvid } from "../test/identity/pki.js";
import { cpuNowMs, measure, quantile, round, type Timing } from "./measure.js";
import type { BenchFn, BenchSection, Cell } from "./types.js";

/** A TLS socket as the peer verifier sees it after a successful handshake. */
function socketWith(svid: TestSvid): TLSSocket {
  type Peer = { raw: Buffer; issuerCertificate?: Peer };
  const certs: Peer[] = svid.chainDer.map((raw) => ({ raw }));
  for (let i = 0; i + 1 < certs.length; i++) certs[i]!.issuerCertificate = certs[i + 1];
  return { authorized: true, remoteAddress: "127.0.0.1", getPeerCertificate: () => certs[0]! } as unknown as TLSSocket;
}

function row(what: string, t: Timing, baseline: Timing | null, note = ""): Record<string, Cell> {
  return {
    measured: what,
    ns_median: round(t.nsMedian),
    ns_p99: round(t.nsP99),
    per_s: Math.round(t.opsPerSec),
    extra_ns_vs_baseline: baseline ? round(t.nsMedian - baseline.nsMedian) : null,
    note: note || (t.capped ? `time-capped: ${t.samples} samples` : ""),
  };
}

export const run: BenchFn = async ({ quick }) => {
  const maxMs = quick ? 400 : 3000;
  const root = await createCa({ trustDomain: "hanzo.ai" });
  const intermediate = await createCa({ trustDomain: "hanzo.ai", name: "spire agent CA", issuer: root });
  const bundles = buildTrustBundleSet(new Map([["hanzo.ai", [root.der]]]));
  const source = { bundles: () => bundles, generation: () => 1 };
  const rows: Array<Record<string, Cell>> = [];
  const notes: string[] = [];

  // A never-seen leaf under a known intermediate: what a workload's first connection costs.
  const fresh: TestSvid[] = [];
  for (let i = 0; i < (quick ? 40 : 200); i++) fresh.push(await issueSvid(intermediate, `spiffe://hanzo.ai/ns/bench/sa/w${i}`));
  let k = 0;
  // One warm-up leaf (JIT, first decode paths), then each of the others once.
  const cold = measure(() => createPeerVerifier(source).verify(socketWith(fresh[k++ % fresh.length]!)), { batch: 1, maxMs: maxMs * 10, maxSamples: fresh.length - 1, warmup: 1, cpu: true });
  rows.push(row("new connection, never-seen SVID (leaf + intermediate)", cold, null, `${cold.samples} distinct leaves, each verified by a new verifier`));

  const known = await issueSvid(intermediate, "spiffe://hanzo.ai/ns/bench/sa/gateway");
  const peers = createPeerVerifier(source);
  peers.verify(socketWith(known));
  const reconnect = measure(() => peers.verify(socketWith(known)), { batch: 200, maxMs, cpu: true });
  rows.push(row("new connection, SVID seen on an earlier connection", reconnect, null, "SHA-256 of the chain"));
  const same = socketWith(known);
  const perRequest = measure(() => peers.verify(same), { batch: 20_000, maxMs, cpu: true });
  rows.push(row("request on a judged connection (per request)", perRequest, null));

  // The gate in front of one route, against the same route alone.
  const table = { "GET /v1/probe": "svid" as const };
  const app = (gated: boolean, peer: typeof peers | null): Hono<EngineEnv> => {
    const a = new Hono<EngineEnv>();
    let rules: RouteRules | null = null;
    const auth = createCallerAuth({ peer, adminToken: "bench-admin-token-0123456789", adminSpiffeIds: new Set(), trustedEvaluators: new Set() });
    if (gated) a.use(identityGate({ auth, log: silentLogger, claimers: [], rules: () => rules! }));
    a.get("/v1/probe", (c) => c.text("ok"));
    rules = routeRules(a, [], table);
    return a;
  };
  const req = new Request("http://127.0.0.1/v1/probe");
  const envFor = (socket: object) => ({ incoming: { headers: {}, socket }, outgoing: {} }) as never;
  const plainEnv = envFor({ remoteAddress: "127.0.0.1" });
  const tlsEnv = envFor(same);
  const call = (a: Hono<EngineEnv>, env: never) => () => Promise.resolve(a.fetch(req, env));
  // The three variants take turns, batch by batch, so that JIT warm-up and the machine's load
  // fall on each alike; each row is the median over its batches.
  const variants = [
    { what: "route alone (Hono app.fetch, baseline)", fn: call(app(false, null), plainEnv) },
    { what: "identity gate + route, plaintext caller", fn: call(app(true, null), plainEnv) },
    { what: "identity gate + route, mTLS caller (judged connection)", fn: call(app(true, peers), tlsEnv) },
  ];
  const perBatch: number[][] = variants.map(() => []);
  const batch = 1000;
  const rounds = quick ? 15 : 100;
  for (const v of variants) for (let i = 0; i < batch; i++) await v.fn();
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < variants.length; j++) {
      const t0 = cpuNowMs();
      for (let i = 0; i < batch; i++) await variants[j]!.fn();
      perBatch[j]!.push(((cpuNowMs() - t0) * 1e6) / batch);
    }
  }
  const timings: Timing[] = perBatch.map((p) => {
    const sorted = [...p].sort((a, b) => a - b);
    return { nsMedian: quantile(sorted, 0.5), nsP99: quantile(sorted, 0.99), opsPerSec: 1e9 / quantile(sorted, 0.5), samples: sorted.length, capped: false };
  });
  variants.forEach((v, j) => rows.push(row(v.what, timings[j]!, j === 0 ? null : timings[0]!, `${rounds} batches of ${batch}, interleaved`)));

  notes.push("the verdict is taken once per connection; requests on it pay the lookup, not the validation");
  notes.push("CPU time of this process per call (median and p99 over batches): waiting for a core on a loaded machine is not counted");
  const section: BenchSection = { name: "identity", title: "identity at the connection: SVID verdicts and the identity gate", rows, notes };
  return section;
};
