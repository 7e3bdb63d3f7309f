// The filter's SHA-256 (assembly/sha256.ts, FIPS 180-4), which checks every policy image a
// sidecar receives, proved two ways: every NIST CAVP byte-oriented vector (short and long
// messages), and node:crypto on the same bytes, for every length from 0 to 4,096 and for
// generated lengths up to 1 MiB that sit on and around block boundaries (k * 64 + {-1, 0,
// 1}) and on the padding boundary (55/56 bytes into a block: one padding block or two).
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { evaluatorPath } from "../../compiler/compile.js";
import { hostImports } from "../../host/engine/runtime.js";

const MiB = 1024 * 1024;

interface Hasher {
  (data: Uint8Array): string;
}

let hash: Hasher;

beforeAll(() => {
  const module = new WebAssembly.Module(readFileSync(evaluatorPath()));
  const instance = new WebAssembly.Instance(module, hostImports(module));
  const ex = instance.exports as { memory: WebAssembly.Memory; _initialize(): void; zt_sha256(p: number, n: number, out: number): void };
  ex._initialize();
  // Room past everything the module uses: this instance does nothing but hash.
  const base = ex.memory.buffer.byteLength;
  ex.memory.grow(Math.ceil((MiB + 4096) / 65536));
  hash = (data) => {
    const mem = new Uint8Array(ex.memory.buffer);
    mem.set(data, base);
    const out = base + MiB + 64;
    ex.zt_sha256(base, data.length, out);
    return Buffer.from(mem.subarray(out, out + 32)).toString("hex");
  };
});

function nodeSha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The vectors of a CAVP .rsp file, after checking the file is the one NIST published. */
function cavp(name: string, sha256: string): Array<{ len: number; msg: Uint8Array; md: string }> {
  const raw = readFileSync(fileURLToPath(new URL(`./cavp/${name}`, import.meta.url)));
  expect(nodeSha256(raw), `${name} is not the NIST file`).toBe(sha256);
  const out: Array<{ len: number; msg: Uint8Array; md: string }> = [];
  let len = -1;
  let msg = "";
  for (const line of raw.toString("latin1").split(/\r?\n/)) {
    const m = /^(Len|Msg|MD) = ([0-9a-f]*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "Len") len = Number(m[2]);
    else if (m[1] === "Msg") msg = m[2]!;
    else {
      // Len is in bits; "Msg = 00" stands for the empty message.
      const bytes = Buffer.from(msg, "hex").subarray(0, len / 8);
      out.push({ len: len / 8, msg: new Uint8Array(bytes), md: m[2]! });
    }
  }
  return out;
}

describe("assembly/sha256.ts", () => {
  it("matches all 65 NIST CAVP short-message vectors (0 to 64 bytes)", () => {
    const vectors = cavp("SHA256ShortMsg.rsp", "75e1cb83994638481808e225b9eb0c1ebd0c232d952ac42b61abce6363be283c");
    expect(vectors).toHaveLength(65);
    for (const v of vectors) expect(hash(v.msg), `Len = ${v.len * 8}`).toBe(v.md);
  });

  it("matches all 64 NIST CAVP long-message vectors (163 to 6,400 bytes)", () => {
    const vectors = cavp("SHA256LongMsg.rsp", "6fac36f37360bcf74ffcf4465c18e30d6d5a04cc90885b901fc3130c16060974");
    expect(vectors).toHaveLength(64);
    expect([vectors[0]!.len, vectors.at(-1)!.len]).toEqual([163, 6400]);
    for (const v of vectors) expect(hash(v.msg), `Len = ${v.len * 8}`).toBe(v.md);
  });

  it("equals node:crypto for every length from 0 to 4,096 bytes", () => {
    const data = randomBytes(4096);
    for (let n = 0; n <= 4096; n++) {
      const slice = data.subarray(0, n);
      if (hash(slice) !== nodeSha256(slice)) expect(hash(slice), `length ${n}`).toBe(nodeSha256(slice));
    }
  });

  it("equals node:crypto on generated inputs up to 1 MiB, on and around every kind of block boundary", () => {
    const boundary = fc
      .tuple(fc.integer({ min: 0, max: MiB / 64 }), fc.constantFrom(-1, 0, 1, 55, 56, 57, 63))
      .map(([k, d]) => Math.min(MiB, Math.max(0, k * 64 + d)));
    fc.assert(
      fc.property(fc.oneof(boundary, fc.integer({ min: 0, max: MiB }), fc.constantFrom(0, MiB, MiB - 1, MiB - 56)), fc.integer(), (n, seed) => {
        const data = new Uint8Array(n);
        // Cheap deterministic fill from the seed (a random buffer per run would dominate the time).
        let x = seed | 1;
        for (let i = 0; i < n; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          data[i] = x & 0xff;
        }
        expect(hash(data), `length ${n}`).toBe(nodeSha256(data));
      }),
      { numRuns: 300 },
    );
  });
});
