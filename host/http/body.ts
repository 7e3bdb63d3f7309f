// Reads a request body as text under a byte limit. A declared Content-Length above the
// limit is refused before reading; a chunked body is counted as it streams in and the
// read stops as soon as it passes the limit.
import type { Context } from "hono";
import { headerOf } from "./request-id.js";

export type BodyResult = { ok: true; text: string } | { ok: false; status: 413 | 400; code: string; message: string };

export async function readBodyText(c: Context, limit: number): Promise<BodyResult> {
  const declared = headerOf(c, "content-length");
  if (declared !== undefined) {
    const n = Number(declared);
    if (!Number.isSafeInteger(n) || n < 0) return { ok: false, status: 400, code: "invalid_content_length", message: "Content-Length is not a number" };
    if (n > limit) return tooLarge(limit);
    // Node's HTTP parser never delivers more than Content-Length bytes.
    return { ok: true, text: await c.req.text() };
  }
  const stream = c.req.raw.body;
  if (stream === null) return { ok: true, text: "" };
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return tooLarge(limit);
    }
    chunks.push(value);
  }
  return { ok: true, text: Buffer.concat(chunks, total).toString("utf8") };
}

function tooLarge(limit: number): BodyResult {
  return { ok: false, status: 413, code: "body_too_large", message: `request body is larger than ${limit} bytes` };
}
