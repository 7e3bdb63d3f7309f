// The policy image of the active module, as sidecars fetch it (GET /v1/policy-image): the
// trie image the linker placed in the module (docs/module-format.md), taken back out of the
// module's data section, with its sha256 and its format version. A sidecar's filter already
// has the evaluator code; a policy write changes only the image, so the image is what
// travels. Computed once per module version (cached on the ActivePolicies object) and
// compressed lazily, once per encoding, when a client asks for it and it pays.
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { brotliCompress, constants as zlib, gzip } from "node:zlib";
import * as L from "../../assembly/layout.js";
import { dataSegments, SECTION, splitSections } from "../../compiler/wasm/binary.js";
import type { ActivePolicies } from "./policy-store.js";

export type ImageEncoding = "br" | "gzip";

export interface PolicyImage {
  /** The module version the image belongs to (`sha256:<module hex>`): the ETag. */
  readonly version: string;
  readonly bytes: Uint8Array;
  /** Lowercase hex sha256 of `bytes`. */
  readonly sha256: string;
  /** The image's format version (header word 1). */
  readonly format: number;
  /** The image compressed with `encoding` when that saves at least a tenth, else null. */
  encoded(encoding: ImageEncoding): Promise<Uint8Array | null>;
}

/** Compression must save at least this share of the bytes to be used. */
const MIN_SAVING = 0.1;

const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);

/** The image linked into a ZT module (compiler/link.ts): located through the link header. */
export function extractImage(wasm: Uint8Array): Uint8Array {
  const data = splitSections(wasm).find((sec) => sec.id === SECTION.data);
  const segments = data ? dataSegments(data.payload) : [];
  const header = segments.find((s) => s.offset === L.LINK_HEADER_ADDR && s.bytes.length >= L.LINK_HEADER_SIZE);
  if (!header) throw new Error("not a linked ZT module: no link header");
  const dv = new DataView(header.bytes.buffer, header.bytes.byteOffset, header.bytes.byteLength);
  if (dv.getUint32(L.LH_MAGIC, true) !== L.LINK_MAGIC) throw new Error("not a linked ZT module: bad link header magic");
  const ptr = dv.getUint32(L.LH_IMAGE_PTR, true);
  const len = dv.getUint32(L.LH_IMAGE_LEN, true);
  const image = segments.find((s) => s.offset === ptr);
  if (!image || image.bytes.length !== len) throw new Error("linked ZT module: the image segment does not match the link header");
  return image.bytes;
}

const cache = new WeakMap<ActivePolicies, PolicyImage>();

/** The image of an active module (computed once per module). */
export function policyImageOf(active: ActivePolicies): PolicyImage {
  let img = cache.get(active);
  if (img === undefined) {
    img = makeImage(active.version, extractImage(active.wasm), active.manifest.image_sha256);
    cache.set(active, img);
  }
  return img;
}

function makeImage(version: string, bytes: Uint8Array, manifestSha256: string | undefined): PolicyImage {
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  // The compiler recorded the image's digest in the manifest: a different one means the
  // module and its manifest disagree, and nothing should be served.
  if (manifestSha256 !== undefined && manifestSha256 !== sha256) throw new Error(`image sha256 ${sha256} differs from the manifest's ${manifestSha256}`);
  const format = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(L.H_VERSION, true);
  const encodings = new Map<ImageEncoding, Promise<Uint8Array | null>>();
  const compress = async (encoding: ImageEncoding): Promise<Uint8Array | null> => {
    const out =
      encoding === "gzip"
        ? await gzipAsync(bytes, { level: 6 })
        : // Quality 5: most of brotli's gain at a small part of quality 11's time.
          await brotliAsync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 5, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length } });
    return out.length <= bytes.length * (1 - MIN_SAVING) ? new Uint8Array(out.buffer, out.byteOffset, out.byteLength) : null;
  };
  return {
    version,
    bytes,
    sha256,
    format,
    encoded(encoding) {
      let p = encodings.get(encoding);
      if (p === undefined) {
        p = compress(encoding);
        encodings.set(encoding, p);
      }
      return p;
    },
  };
}
