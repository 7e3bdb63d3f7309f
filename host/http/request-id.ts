// Request ids and raw header reads shared by the middleware and the evaluate hot path.
// Headers are read from Node's already-parsed header object when there is one: asking the
// Fetch Request for one header makes @hono/node-server build a whole Headers object.
import { randomBytes } from "node:crypto";
import type { Context } from "hono";

const GIVEN_ID = /^[A-Za-z0-9._:/+=-]{1,128}$/;
const PREFIX = randomBytes(6).toString("hex");
let seq = 0;

/** A header value, lowercase `name`. */
export function headerOf(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined)?.incoming;
  if (incoming) {
    const v = incoming.headers[name];
    return Array.isArray(v) ? v[0] : v;
  }
  return c.req.header(name);
}

/** The client's x-request-id when it is a sane token, else `<process prefix>-<counter>`. */
export function requestIdOf(c: Context): string {
  return requestIdFrom(headerOf(c, "x-request-id"));
}

/** requestIdOf for the header's value (the direct path reads it from Node's headers). */
export function requestIdFrom(given: string | undefined): string {
  return given !== undefined && GIVEN_ID.test(given) ? given : PREFIX + "-" + (++seq).toString(36);
}
