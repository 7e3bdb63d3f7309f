// Certificate files (ZT_TLS_CERT/KEY/BUNDLE) and plaintext mode.
import "reflect-metadata";
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createIdentitySource, assertPlaintextHost, PLAINTEXT_WARNING, type IdentitySource, type RotateEvent } from "../../host/identity/tls.js";
import { createCa, issueSvid, type TestCa } from "./pki.js";
import { startHarness, clientAgent, request } from "./harness.js";

const ZT_ID = "spiffe://hanzo.ai/hanzo-k8s/hanzo/zt";
const GATEWAY = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";

let dir: string;
let root: TestCa;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zt-files-"));
  root = await createCa({ trustDomain: "hanzo.ai" });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function paths(name: string) {
  return { certPath: join(dir, `${name}.crt`), keyPath: join(dir, `${name}.key`), bundlePath: join(dir, `${name}-bundle.crt`) };
}

async function writeIdentity(name: string, id: string, ca: TestCa = root): Promise<ReturnType<typeof paths>> {
  const p = paths(name);
  const svid = await issueSvid(ca, id);
  writeFileSync(p.certPath, svid.certPem);
  writeFileSync(p.keyPath, svid.keyPem);
  writeFileSync(p.bundlePath, root.pem);
  return p;
}

describe("files mode", () => {
  let source: IdentitySource | null = null;
  afterAll(async () => source?.close());

  it("serves mTLS from files and picks up rewritten files without a restart", async () => {
    const p = await writeIdentity("zt", ZT_ID);
    source = createIdentitySource({ mode: "files", ...p, reloadIntervalMs: 20 });
    await source.ready();
    expect(source.status()).toMatchObject({ mode: "files", ready: true, spiffeId: ZT_ID });
    const h = await startHarness({ source });
    try {
      const gw = await issueSvid(root, GATEWAY);
      const agent = () => clientAgent(root.pem, ZT_ID, { certPem: gw.certPem, keyPem: gw.keyPem }, false);
      const first = await request(h.port, agent(), "GET", "/whoami");
      expect(first.body["caller"]).toBe(`mtls:${GATEWAY}`);

      const rotated = new Promise<RotateEvent>((r) => {
        const off = source!.on("rotate", (ev) => {
          off();
          r(ev);
        });
      });
      await writeIdentity("zt", ZT_ID);
      const ev = await rotated;
      expect(ev.svidChanged).toBe(true);
      const second = await request(h.port, agent(), "GET", "/whoami");
      expect(second.status).toBe(200);
      expect(second.serverSerial.toLowerCase()).toBe(ev.identity.serialNumber.toLowerCase());
      expect(second.serverSerial).not.toBe(first.serverSerial);
      expect(source.status().rotations).toBe(1);
    } finally {
      await h.close();
    }
  });

  it("reports a broken file without its path (the log has it), and clears the error once the file is fixed", async () => {
    const p = await writeIdentity("health", ZT_ID);
    const logs: string[] = [];
    const s = createIdentitySource({ mode: "files", ...p, reloadIntervalMs: 20 }, { log: (_l, m) => void logs.push(m) });
    try {
      await s.ready();
      const key = readFileSync(p.keyPath, "utf8");
      for (const [breakIt, shown] of [
        [() => writeFileSync(p.keyPath, "not a key"), /^reloading certificate files: ZT_TLS_KEY: not an unencrypted PEM private key/],
        [() => rmSync(p.keyPath), /^reloading certificate files: ZT_TLS_KEY: ENOENT$/],
      ] as const) {
        breakIt();
        await until(() => s.status().lastError !== null);
        const status = s.status();
        expect(status.lastError).toMatch(shown);
        expect(status.lastError).not.toContain(dir);
        // Still serving the previous SVID meanwhile.
        expect(status).toMatchObject({ ready: true, spiffeId: ZT_ID });
        expect(logs.some((m) => m.includes(p.keyPath))).toBe(true);
        // The same files as before: nothing to install, but the cause is gone.
        writeFileSync(p.keyPath, key);
        await until(() => s.status().lastError === null);
        expect(s.status()).toMatchObject({ ready: true, rotations: 0 });
      }
    } finally {
      await s.close();
    }
  });

  it("refuses files that are missing, mismatched or not an SVID, saying which", async () => {
    const p = await writeIdentity("bad", ZT_ID);
    expect(() => createIdentitySource({ mode: "files", ...p, certPath: join(dir, "nope.crt"), reloadIntervalMs: 1000 })).toThrow(/ZT_TLS_CERT ".*nope.crt": ENOENT/);

    const other = await issueSvid(root, ZT_ID);
    writeFileSync(p.keyPath, other.keyPem);
    expect(() => createIdentitySource({ mode: "files", ...p, reloadIntervalMs: 1000 })).toThrow(/private key does not match the certificate/);

    const two = await issueSvid(root, null, { uris: [ZT_ID, GATEWAY] });
    writeFileSync(p.certPath, two.certPem);
    writeFileSync(p.keyPath, two.keyPem);
    expect(() => createIdentitySource({ mode: "files", ...p, reloadIntervalMs: 1000 })).toThrow(/ZT_TLS_CERT is not a valid X.509-SVID \(uri_san_count\)/);

    const stranger = await createCa({ trustDomain: "hanzo.ai", name: "not in the bundle" });
    await writeIdentity("bad", ZT_ID, stranger);
    writeFileSync(p.bundlePath, root.pem);
    expect(() => createIdentitySource({ mode: "files", ...p, reloadIntervalMs: 1000 })).toThrow(/serving SVID rejected \(untrusted_chain\)/);

    writeFileSync(p.bundlePath, "no pem here");
    expect(() => createIdentitySource({ mode: "files", ...p, reloadIntervalMs: 1000 })).toThrow(/ZT_TLS_BUNDLE ".*": no PEM CERTIFICATE block/);
  });
});

describe("plaintext mode", () => {
  it("has no TLS identity, says so loudly, and binds loopback only", async () => {
    const logs: string[] = [];
    const s = createIdentitySource({ mode: "plaintext" }, { log: (_l, m) => logs.push(m) });
    await s.ready();
    expect(logs).toEqual([PLAINTEXT_WARNING]);
    expect(s.status()).toMatchObject({ mode: "plaintext", ready: true, spiffeId: null });
    expect(() => s.secureContextOptions()).toThrow(/plaintext mode has no TLS identity/);
    expect(() => assertPlaintextHost("127.0.0.1")).not.toThrow();
    expect(() => assertPlaintextHost("::1")).not.toThrow();
    expect(() => assertPlaintextHost("0.0.0.0")).toThrow(/refusing to serve plain HTTP on "0.0.0.0"/);
    expect(() => assertPlaintextHost("10.0.0.5")).toThrow(/loopback only/);
    await s.close();
  });
});

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}
