// Key pairs from Node's X25519 agree with wg's own arithmetic; key files are 0600 from the
// first byte; `zt mesh keygen` prints the private key only when asked to.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isWireGuardKey } from "../../compiler/mesh/keys.js";
import { generateKeyPair, keyFromHex, keyToHex, publicKeyOf, readPrivateKeyFile, writePrivateKeyFile } from "../../host/mesh/keys.js";
import { requireProgram } from "../support/programs.js";
import { zt } from "./helpers.js";

describe("WireGuard keys", () => {
  it("publicKeyOf agrees with `wg pubkey` on any 32 bytes", () => {
    const wg = requireProgram("wg");
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const priv = Buffer.from(bytes).toString("base64");
        const r = spawnSync(wg, ["pubkey"], { input: priv + "\n", encoding: "utf8" });
        expect(r.status).toBe(0);
        expect(publicKeyOf(priv)).toBe(r.stdout.trim());
      }),
      { numRuns: 40 },
    );
  });

  it("generateKeyPair gives a matching pair in wg's text form; hex is the UAPI's form", () => {
    const k = generateKeyPair();
    expect(isWireGuardKey(k.privateKey) && isWireGuardKey(k.publicKey)).toBe(true);
    expect(publicKeyOf(k.privateKey)).toBe(k.publicKey);
    expect(keyToHex(k.publicKey)).toMatch(/^[0-9a-f]{64}$/);
    expect(keyFromHex(keyToHex(k.publicKey))).toBe(k.publicKey);
  });

  it("key files are written 0600 whatever the umask, replaced only when asked, and read back without quoting them in errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-mesh-keys-"));
    const file = join(dir, "private-key");
    const old = process.umask(0);
    try {
      const k = generateKeyPair();
      await writePrivateKeyFile(file, k.privateKey, false);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      await expect(writePrivateKeyFile(file, generateKeyPair().privateKey, false)).rejects.toThrow(/exists: give --force/);
      expect(await readPrivateKeyFile(file)).toEqual({ ok: true, privateKey: k.privateKey, publicKey: k.publicKey, looseMode: false });
      const k2 = generateKeyPair();
      await writePrivateKeyFile(file, k2.privateKey, true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, "utf8")).toBe(k2.privateKey + "\n");
      writeFileSync(join(dir, "loose"), k2.privateKey, { mode: 0o644 });
      expect(await readPrivateKeyFile(join(dir, "loose"))).toMatchObject({ ok: true, looseMode: true });
      writeFileSync(join(dir, "bad"), k2.privateKey.slice(1));
      const bad = await readPrivateKeyFile(join(dir, "bad"));
      expect(bad).toEqual({ ok: false, error: `the private key file ${join(dir, "bad")} does not hold a WireGuard key (32 bytes in base64, as zt mesh keygen writes)` });
      expect(await readPrivateKeyFile(join(dir, "absent"))).toEqual({ ok: false, error: `cannot read the private key file ${join(dir, "absent")}: ENOENT` });
    } finally {
      process.umask(old);
    }
  });

  it("zt mesh keygen: private key to a 0600 file and only the public key printed; printing it needs the explicit flag", () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-mesh-keygen-"));
    const file = join(dir, "gw.key");
    const r = zt(["mesh", "keygen", "-o", file]);
    expect(r.code, r.err).toBe(0);
    const printed = JSON.parse(r.out) as Record<string, string>;
    expect(Object.keys(printed).sort()).toEqual(["keyCreated", "privateKeyFile", "publicKey"]);
    const priv = readFileSync(file, "utf8").trim();
    expect(publicKeyOf(priv)).toBe(printed.publicKey);
    expect(r.out + r.err).not.toContain(priv);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(printed.keyCreated).toMatch(/^\d{4}-\d{2}-\d{2}$/);

    const again = zt(["mesh", "keygen", "-o", file]);
    expect(again.code).toBe(2);
    expect(again.err).toContain("exists: give --force");
    expect(readFileSync(file, "utf8").trim()).toBe(priv);
    expect(zt(["mesh", "keygen", "-o", file, "--force"]).code).toBe(0);
    expect(readFileSync(file, "utf8").trim()).not.toBe(priv);

    const none = zt(["mesh", "keygen"]);
    expect(none.code).toBe(2);
    expect(none.out).toBe("");
    expect(none.err).toContain("--print-private-key");
    const shown = zt(["mesh", "keygen", "--print-private-key"]);
    const pair = JSON.parse(shown.out) as { privateKey: string; publicKey: string };
    expect(publicKeyOf(pair.privateKey)).toBe(pair.publicKey);
  });

  it("zt mesh render prints no private key unless --include-private-key, and then only the matching one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zt-mesh-render-"));
    const a = generateKeyPair();
    const b = generateKeyPair();
    await writePrivateKeyFile(join(dir, "a.key"), a.privateKey, false);
    const { meshDoc } = await import("./helpers.js");
    const doc = (pubA: string) =>
      meshDoc("10.10.0.0/24", [
        { name: "a", address: "10.10.0.1", endpoint: "192.0.2.1:51820", publicKey: pubA, keyCreated: "2026-01-01", privateKeyFile: join(dir, "a.key") },
        { name: "b", address: "10.10.0.2", endpoint: "192.0.2.2:51820", publicKey: b.publicKey, keyCreated: "2026-01-01", privateKeyFile: join(dir, "b.key") },
      ]);
    writeFileSync(join(dir, "mesh.yaml"), doc(a.publicKey));
    const plain = zt(["mesh", "render", join(dir, "mesh.yaml"), "--cluster", "a"]);
    expect(plain.code).toBe(0);
    expect(plain.out).not.toContain(a.privateKey);
    expect(plain.out).toContain(`# PrivateKey: not rendered; read at apply time from ${join(dir, "a.key")}`);
    const full = zt(["mesh", "render", join(dir, "mesh.yaml"), "--cluster", "a", "--include-private-key"]);
    expect(full.out).toContain(`PrivateKey = ${a.privateKey}`);
    // A key file that is not the document's key pair is refused, not printed.
    writeFileSync(join(dir, "mesh.yaml"), doc(generateKeyPair().publicKey));
    const wrong = zt(["mesh", "render", join(dir, "mesh.yaml"), "--cluster", "a", "--include-private-key"]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("does not belong to publicKey of cluster a");
    expect(wrong.out + wrong.err).not.toContain(a.privateKey);
    expect(zt(["mesh", "render", join(dir, "mesh.yaml"), "--cluster", "zz"]).code).toBe(2);
    expect(zt(["mesh", "render", join(dir, "mesh.yaml")]).code).toBe(2);
  });
});
