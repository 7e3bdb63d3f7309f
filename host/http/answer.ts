// An answer before it is a Response: the hot path's handlers and the identity gate build
// these, so that Hono (as a Response) and the direct path of POST /v1/evaluate
// (direct-evaluate.ts, written to the socket) send the same status, headers and body.
export interface Answer {
  readonly status: number;
  readonly body: string | Uint8Array<ArrayBuffer>;
  /** Plain lowercase names: the fast path of @hono/node-server and of ServerResponse.writeHead. */
  readonly headers: Record<string, string>;
}

export function toResponse(a: Answer): Response {
  return new Response(a.body, { status: a.status, headers: a.headers });
}
