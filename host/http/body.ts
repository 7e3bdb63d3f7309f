// Request bodies: read under a byte limit, checked to be UTF-8, and (JSON bodies) checked
// for their media type and bounded before they are parsed. A declared Content-Length above
// the limit is refused before reading; a chunked body is counted as it streams in and the
// read stops as soon as it passes the limit. A body the client stops sending part-way is a
// RequestAborted (app.ts counts it and logs it at debug: the client is gone, nobody to answer).
import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { type JsonBounds, scanJson } from "./json-bounds.js";
import { headerOf } from "./request-id.js";
import { invalidUtf8Offset } from "./utf8.js";

export interface BodyError {
  readonly ok: false;
  readonly status: 400 | 413 | 415;
  readonly code: string;
  readonly message: string;
  /** JSON path of the fault (`$`, `$[3]`). */
  readonly path: string;
  /** Byte offset in the body, when the fault is at one place (bad UTF-8, a bound passed). */
  readonly offset?: number;
}

export type BodyResult = { ok: true; text: string } | BodyError;

/** The client closed the connection (or broke the framing) before the whole body arrived. */
export class RequestAborted extends Error {
  constructor(cause: unknown) {
    super("the client stopped sending the request body", { cause });
    this.name = "RequestAborted";
  }
}

function tooLarge(limit: number): BodyError {
  return { ok: false, status: 413, code: "body_too_large", message: `request body is larger than ${limit} bytes`, path: "$" };
}

/** The body's bytes, at most `limit` of them. Throws RequestAborted when the client goes away mid-body. */
export async function readBodyBytes(c: Context, limit: number): Promise<{ ok: true; bytes: Buffer } | BodyError> {
  const declared = headerOf(c, "content-length");
  if (declared !== undefined) {
    const incoming = unreadIncoming(c);
    if (incoming !== null) return readIncomingBytes(incoming, declared, limit);
    const refused = declaredLengthError(declared, limit);
    if (refused !== null) return refused;
    // Node's HTTP parser never delivers more than Content-Length bytes.
    try {
      return { ok: true, bytes: Buffer.from(await c.req.raw.arrayBuffer()) };
    } catch (e) {
      throw new RequestAborted(e);
    }
  }
  const stream = c.req.raw.body;
  if (stream === null) return { ok: true, bytes: Buffer.alloc(0) };
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
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
  } catch (e) {
    throw new RequestAborted(e);
  }
  return { ok: true, bytes: Buffer.concat(chunks, total) };
}

/** A declared Content-Length that is not a length, or is above `limit`: refused before reading. */
function declaredLengthError(declared: string, limit: number): BodyError | null {
  const n = Number(declared);
  if (!Number.isSafeInteger(n) || n < 0) return { ok: false, status: 400, code: "invalid_content_length", message: "Content-Length is not a number", path: "$" };
  return n > limit ? tooLarge(limit) : null;
}

/**
 * readBodyBytes for a Node request with a Content-Length that nothing has read yet (the direct
 * path of POST /v1/evaluate, direct-evaluate.ts): the same checks, the same answers.
 */
export async function readIncomingBytes(incoming: IncomingMessage, declared: string, limit: number): Promise<{ ok: true; bytes: Buffer } | BodyError> {
  const refused = declaredLengthError(declared, limit);
  if (refused !== null) return refused;
  try {
    return { ok: true, bytes: await readIncoming(incoming) };
  } catch (e) {
    throw new RequestAborted(e);
  }
}

/** The Node request behind @hono/node-server, when nothing has read its body yet. */
function unreadIncoming(c: Context): IncomingMessage | null {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming === undefined || incoming.readableDidRead || incoming.readableEnded) return null;
  return incoming;
}

/**
 * The body's chunks as one Buffer, read from the Node request directly: Request.arrayBuffer()
 * copies the bytes into a new ArrayBuffer (~0.7 µs and a backing store for the GC per request)
 * that we would only wrap in a Buffer again. A body that arrived whole counts even when the
 * connection closes right after it, as in @hono/node-server's own reader.
 */
async function readIncoming(incoming: IncomingMessage): Promise<Buffer> {
  // A small request arrives in one read of the socket, and the request event fires while Node
  // is still parsing it: one turn of the microtask queue later the whole body is buffered in
  // the stream, and one read() takes it, without the listeners and stream turns of flowing mode.
  if (!incoming.complete) await undefined;
  if (incoming.complete && !incoming.readableDidRead && !incoming.destroyed) {
    const declared = Number(incoming.headers["content-length"]);
    if (incoming.readableLength === declared) return (incoming.read() as Buffer | null) ?? Buffer.alloc(0);
  }
  return streamIncoming(incoming);
}

function streamIncoming(incoming: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const cleanup = (): void => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onGone);
      incoming.off("close", onGone);
    };
    const onData = (chunk: Buffer): void => void chunks.push(chunk);
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onGone = (err?: Error): void => {
      if (incoming.complete) return onEnd();
      cleanup();
      reject(err ?? new Error("the client closed the connection before the body arrived"));
    };
    incoming.on("data", onData);
    incoming.once("end", onEnd);
    incoming.once("error", onGone);
    incoming.once("close", onGone);
  });
}

function notUtf8(offset: number): BodyError {
  return { ok: false, status: 400, code: "invalid_utf8", message: `the body is not valid UTF-8 (byte ${offset})`, path: "$", offset };
}

/** The body as text; bytes that are not UTF-8 are refused (400 invalid_utf8 with their offset), never replaced. */
export async function readBodyText(c: Context, limit: number): Promise<BodyResult> {
  const r = await readBodyBytes(c, limit);
  if (!r.ok) return r;
  const bad = invalidUtf8Offset(r.bytes);
  if (bad >= 0) return notUtf8(bad);
  return { ok: true, text: r.bytes.toString("utf8") };
}

const JSON_TYPE = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/**
 * 415 unless the body is declared `application/json` (a `charset` parameter may only say
 * UTF-8). Without this, a web page could post to a plaintext loopback engine cross-origin
 * (text/plain and form bodies need no CORS preflight) and write audit records.
 */
export function requireJsonType(c: Context): BodyError | null {
  return jsonTypeError(headerOf(c, "content-type"));
}

/** requireJsonType for the header's value. */
export function jsonTypeError(type: string | undefined): BodyError | null {
  if (type !== undefined && JSON_TYPE.test(type.trim())) return null;
  return { ok: false, status: 415, code: "unsupported_media_type", message: `send the body as application/json (got ${type === undefined ? "no Content-Type" : JSON.stringify(type.slice(0, 100))})`, path: "$" };
}

/** Media types of a policy document: YAML, or JSON (which the YAML parser reads as well). */
const POLICY_TYPES = /^(?:application\/(?:yaml|x-yaml|json)|text\/(?:yaml|x-yaml))\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** 415 unless the body is declared YAML (`application/yaml`, `text/yaml`, `x-yaml`) or JSON; the type decides how it is checked. */
export function documentType(c: Context): { ok: true; json: boolean } | BodyError {
  const type = headerOf(c, "content-type");
  const t = type?.trim();
  if (t !== undefined && POLICY_TYPES.test(t)) return { ok: true, json: /json/i.test(t) };
  return { ok: false, status: 415, code: "unsupported_media_type", message: `send the document as application/yaml or application/json (got ${type === undefined ? "no Content-Type" : JSON.stringify(type.slice(0, 100))})`, path: "$" };
}

/** A parsed JSON body: one value, or a large top-level array handed out in slices (parseSlice). */
export type JsonBody = { ok: true; value: unknown; batch: null } | { ok: true; value: undefined; batch: JsonBatch };

export interface JsonBatch {
  /** Elements of the array. */
  readonly length: number;
  /** Slices to parse, in order. */
  readonly slices: number;
  /** The elements of slice `k` (each slice is at most SLICE_ITEMS elements, or one element, of at most SLICE_BYTES). */
  parseSlice(k: number): { ok: true; first: number; values: unknown[] } | BodyError;
}

/** Elements per slice of a large array: parsed, validated, decided, audited and serialised in a few milliseconds of CPU (bench: hostile). */
export const SLICE_ITEMS = 256;
const SLICE_BYTES = 256 * 1024;

function invalidJson(message: string, path: string, offset?: number): BodyError {
  return { ok: false, status: 400, code: "invalid_json", message: `body is not valid JSON: ${message}`, path, ...(offset === undefined ? {} : { offset }) };
}

function parseText(text: string, path: string): { ok: true; value: unknown } | BodyError {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return invalidJson((e as Error).message.slice(0, 200), path);
  }
}

function sliced(bytes: Buffer, sep: Int32Array, items: number): JsonBatch {
  // Slice k holds elements [starts[k], starts[k + 1]).
  const starts: number[] = [0];
  let from = 0;
  for (let i = 1; i < items; i++) {
    if (i - from >= SLICE_ITEMS || sep[i]! - sep[from]! > SLICE_BYTES) {
      starts.push(i);
      from = i;
    }
  }
  starts.push(items);
  return {
    length: items,
    slices: starts.length - 1,
    parseSlice(k) {
      const a = starts[k]!;
      const b = starts[k + 1]!;
      const r = parseText("[" + bytes.toString("utf8", sep[a]! + 1, sep[b]!) + "]", "$");
      if (r.ok) return { ok: true, first: a, values: r.value as unknown[] };
      // Name the element at fault (error path only: at most one slice is parsed again).
      for (let i = a; i < b; i++) {
        const one = parseText(bytes.toString("utf8", sep[i]! + 1, sep[i + 1]!), `$[${i}]`);
        if (!one.ok) return { ...one, offset: sep[i]! + 1 };
      }
      return { ...r, path: `$[${a}]` };
    },
  };
}

/**
 * A JSON body: media type, size, UTF-8 and the bounds checked first, in that order, then
 * parsed; a top-level array larger than one slice is returned as a JsonBatch for the caller
 * to parse slice by slice, letting other requests in between.
 */
export async function readJsonBody(c: Context, limit: number, bounds: JsonBounds): Promise<JsonBody | BodyError> {
  const wrongType = requireJsonType(c);
  if (wrongType) return wrongType;
  const r = await readBodyBytes(c, limit);
  if (!r.ok) return r;
  return parseJsonBytes(r.bytes, bounds);
}

/** readJsonBody for a Node request with a declared Content-Length that nothing has read yet. */
export async function readIncomingJson(incoming: IncomingMessage, contentType: string | undefined, declared: string, limit: number, bounds: JsonBounds): Promise<JsonBody | BodyError> {
  const wrongType = jsonTypeError(contentType);
  if (wrongType) return wrongType;
  const r = await readIncomingBytes(incoming, declared, limit);
  if (!r.ok) return r;
  return parseJsonBytes(r.bytes, bounds);
}

export function parseJsonBytes(bytes: Buffer, bounds: JsonBounds): JsonBody | BodyError {
  const bad = invalidUtf8Offset(bytes);
  if (bad >= 0) return notUtf8(bad);
  const shape = scanJson(bytes, bounds);
  if (!shape.ok) return { ok: false, status: 400, code: shape.code, message: shape.message, path: shape.path, offset: shape.offset };
  const sep = shape.separators;
  if (sep !== null && (shape.items > SLICE_ITEMS || bytes.length > SLICE_BYTES) && shape.items > 1) {
    return { ok: true, value: undefined, batch: sliced(bytes, sep, shape.items) };
  }
  const v = parseText(bytes.toString("utf8"), "$");
  return v.ok ? { ok: true, value: v.value, batch: null } : v;
}

/** Gives the event loop a turn (other requests, health probes) between two slices of work. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
