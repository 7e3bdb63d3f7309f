import "reflect-metadata";
import { describe, it, expect, beforeAll, afterEach } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicKey } from "node:crypto";
import { watchX509Svids, workloadApiTarget, type X509Context, type Watch } from "../../host/identity/workload-api.js";
import { createCa, issueSvid, type TestCa } from "./pki.js";
import { startFakeAgent, svidMessage, type FakeAgent, type WireResponse } from "./agent-server.js";

const ZT_ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt";

let root: TestCa;
let inter: TestCa;
let partner: TestCa;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  root = await createCa({ trustDomain: "hanzo.ai" });
  inter = await createCa({ trustDomain: "hanzo.ai", name: "agent CA", issuer: root });
  partner = await createCa({ trustDomain: "partner.org" });
});

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tempSocket(): string {
  const dir = mkdtempSync(join(tmpdir(), "zt-wl-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "agent.sock");
}

async function response(ttlMs = 3600_000, hint = ""): Promise<WireResponse> {
  const svid = await issueSvid(inter, ZT_ID, { ttlMs });
  return {
    svids: [svidMessage(ZT_ID, svid, [root], hint)],
    crl: [],
    federated_bundles: { "spiffe://partner.org": partner.der },
  };
}

interface Collector {
  readonly updates: X509Context[];
  readonly errors: Error[];
  /** Resolves with the next update. */
  next(): Promise<X509Context>;
  /** Resolves with the next error. */
  nextError(): Promise<Error>;
  onUpdate(c: X509Context): void;
  onError(e: Error): void;
}

function collector(): Collector {
  const updates: X509Context[] = [];
  const errors: Error[] = [];
  let waiters: Array<(c: X509Context) => void> = [];
  let errWaiters: Array<(e: Error) => void> = [];
  return {
    updates,
    errors,
    next: () => new Promise((r) => waiters.push(r)),
    nextError: () => new Promise((r) => errWaiters.push(r)),
    onUpdate(c: X509Context) {
      updates.push(c);
      const w = waiters;
      waiters = [];
      w.forEach((f) => f(c));
    },
    onError(e: Error) {
      errors.push(e);
      const w = errWaiters;
      errWaiters = [];
      w.forEach((f) => f(e));
    },
  };
}

function watch(socket: string, c: Collector): Watch {
  const w = watchX509Svids(socket, (x) => c.onUpdate(x), (e) => c.onError(e), { backoffMinMs: 20, backoffMaxMs: 200 });
  cleanups.push(() => w.close());
  return w;
}

async function agent(socket: string, initial: WireResponse | null): Promise<FakeAgent> {
  const a = await startFakeAgent(socket, initial);
  cleanups.push(() => a.close());
  return a;
}

describe("Workload API client against a gRPC agent built from the spec's proto", () => {
  it("fetches the SVID, its key, the bundle and federated bundles, sending the security header", async () => {
    const socket = tempSocket();
    const first = await response(3600_000, "internal");
    const a = await agent(socket, first);
    const c = collector();
    const got = c.next();
    watch(socket, c);
    const ctx = await got;
    expect(a.headers).toEqual(["true"]);
    expect(ctx.svids).toHaveLength(1);
    const svid = ctx.svids[0]!;
    expect(svid.spiffeId).toBe(ZT_ID);
    expect(svid.trustDomain).toBe("hanzo.ai");
    expect(svid.hint).toBe("internal");
    expect(svid.chain).toHaveLength(2);
    expect(Buffer.concat(svid.chain).equals(first.svids[0]!.x509_svid)).toBe(true);
    expect(svid.bundle.map((b) => b.toString("hex"))).toEqual([root.der.toString("hex")]);
    // The private key is the pair of the leaf's public key.
    const fromKey = createPublicKey(svid.privateKey).export({ type: "spki", format: "der" });
    const leafPem = `-----BEGIN CERTIFICATE-----\n${svid.chain[0]!.toString("base64")}\n-----END CERTIFICATE-----`;
    expect(fromKey.equals(createPublicKey(leafPem).export({ type: "spki", format: "der" }))).toBe(true);
    expect([...ctx.bundles.keys()].sort()).toEqual(["hanzo.ai", "partner.org"]);
    expect(ctx.bundles.get("partner.org")![0]!.equals(partner.der)).toBe(true);
  });

  it("delivers every rotation pushed on the open stream, in order", async () => {
    const socket = tempSocket();
    const a = await agent(socket, await response());
    const c = collector();
    const first = c.next();
    watch(socket, c);
    await first;
    const serials: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await response(60_000);
      const got = c.next();
      a.push(r);
      const ctx = await got;
      expect(Buffer.concat(ctx.svids[0]!.chain).equals(r.svids[0]!.x509_svid)).toBe(true);
      serials.push(ctx.svids[0]!.chain[0]!.toString("hex"));
    }
    expect(new Set(serials).size).toBe(3);
    expect(a.calls()).toBe(1);
  });

  it("waits for an agent that is not there yet, then connects", async () => {
    const socket = tempSocket();
    const c = collector();
    const err = c.nextError();
    watch(socket, c);
    expect((await err).message).toContain(socket);
    const got = c.next();
    await agent(socket, await response());
    expect((await got).svids[0]!.spiffeId).toBe(ZT_ID);
  });

  it("reopens the stream when the agent ends it and when the agent restarts", async () => {
    const socket = tempSocket();
    const a = await agent(socket, await response());
    const c = collector();
    const first = c.next();
    watch(socket, c);
    await first;

    const again = c.next();
    const ended = c.nextError();
    a.endStreams();
    expect((await ended).message).toContain("ended the FetchX509SVID stream");
    await again;
    expect(a.calls()).toBe(2);

    await a.close();
    const fresh = await response();
    const afterRestart = c.next();
    await agent(socket, fresh);
    const ctx = await afterRestart;
    expect(Buffer.concat(ctx.svids[0]!.chain).equals(fresh.svids[0]!.x509_svid)).toBe(true);
  });

  it("reports an undecodable message by field and keeps the stream for the next one", async () => {
    const socket = tempSocket();
    const a = await agent(socket, await response());
    const c = collector();
    const first = c.next();
    watch(socket, c);
    await first;
    const bad = await response();
    bad.svids[0]!.x509_svid_key = Buffer.from("not a key");
    const err = c.nextError();
    a.push(bad);
    expect((await err).message).toContain("X509SVIDResponse.svids[0].x509_svid_key");
    const empty: WireResponse = { svids: [], crl: [], federated_bundles: {} };
    const err2 = c.nextError();
    a.push(empty);
    expect((await err2).message).toContain("svids is empty");
    const good = await response();
    const got = c.next();
    a.push(good);
    expect(Buffer.concat((await got).svids[0]!.chain).equals(good.svids[0]!.x509_svid)).toBe(true);
    expect(a.calls()).toBe(1);
  });

  it("accepts the socket as a path or a unix: URI, and rejects relative paths", () => {
    expect(workloadApiTarget("/run/spire/sockets/agent.sock")).toBe("unix:///run/spire/sockets/agent.sock");
    expect(workloadApiTarget("unix:///run/spire/sockets/agent.sock")).toBe("unix:///run/spire/sockets/agent.sock");
    expect(workloadApiTarget("unix:/run/a.sock")).toBe("unix:///run/a.sock");
    expect(() => workloadApiTarget("agent.sock")).toThrow(/absolute path/);
  });
});
