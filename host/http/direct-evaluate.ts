// The direct path of POST /v1/evaluate: the hottest route, served from Node's request event
// ahead of @hono/node-server and Hono. Per request that skips the Fetch Request and Response
// objects, Hono's context, its route matching (twice: once for the identity gate's rule, once to
// dispatch) and the middleware chain: ~15 µs of the main thread's ~50 µs under load (docs/performance.md).
// It serves with the same parts as the Hono route (routes/evaluate.ts: evaluateHandler; the
// identity gate's gateCheck; body.ts) and takes only requests whose answer it can reproduce
// exactly: `POST /v1/evaluate` as the request target, a Content-Length, a Host header that
// @hono/node-server accepts without building a URL, no extension that claims requests, and
// the route table giving this route its rule. Everything else goes to Hono, which stays the
// reference: test/http/direct-evaluate.property.test.ts drives both with generated requests.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Answer } from "./answer.js";
import { readIncomingJson } from "./body.js";
import type { GateVerdict, GateRequest } from "./identity-gate.js";
import type { IdentityRule } from "../identity/caller.js";
import { requestIdFrom } from "./request-id.js";
import type { EvaluateCall } from "./routes/evaluate.js";

export interface DirectEvaluateDeps {
  /** The route's handler (evaluateHandler), the same one the Hono route calls. */
  readonly evaluate: (call: EvaluateCall) => Promise<Answer>;
  /** The identity gate's check (gateCheck). */
  readonly check: (incoming: IncomingMessage, rule: IdentityRule, req: GateRequest) => GateVerdict;
  /** The rule route-identity.ts gives POST /v1/evaluate. */
  readonly rule: IdentityRule;
  readonly maxBodyBytes: number;
  /** The app's error handler (app.onError) as an answer: logs, counts, and says what to send. */
  readonly failed: (err: unknown, requestId: string, method: string, path: string) => Answer;
}

/** A request handler that serves what it takes and answers false for everything else. */
export type DirectHandler = (incoming: IncomingMessage, outgoing: ServerResponse) => boolean;

const PATH = "/v1/evaluate";
// @hono/node-server's own test for a Host it uses as it is (reValidHost in its listener);
// any other Host goes through its URL parser, which may refuse the request: Hono answers those.
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;
const GATE_REQUEST_METHOD = "POST";

export function directEvaluate(deps: DirectEvaluateDeps): DirectHandler {
  const { evaluate, check, rule, maxBodyBytes, failed } = deps;

  const serve = async (incoming: IncomingMessage, declared: string): Promise<Answer> => {
    const headers = incoming.headers;
    const given = headers["x-request-id"];
    const requestId = requestIdFrom(Array.isArray(given) ? given[0] : given);
    try {
      const verdict = check(incoming, rule, { requestId, method: GATE_REQUEST_METHOD, path: PATH });
      if (!verdict.ok) return verdict.answer;
      const contentType = headers["content-type"];
      return await evaluate({
        requestId,
        identity: verdict.caller,
        caller: verdict.label,
        readBody: (bounds) => readIncomingJson(incoming, contentType, declared, maxBodyBytes, bounds),
      });
    } catch (e) {
      return failed(e, requestId, GATE_REQUEST_METHOD, PATH);
    }
  };

  return (incoming, outgoing) => {
    if (incoming.method !== "POST" || incoming.url !== PATH || incoming.httpVersionMajor !== 1) return false;
    const declared = incoming.headers["content-length"];
    const host = incoming.headers.host;
    if (declared === undefined || host === undefined || !PLAIN_HOST.test(host)) return false;
    void serve(incoming, declared)
      .then((a) => send(incoming, outgoing, a))
      .catch((e: unknown) => {
        // The answer could not be written (as @hono/node-server's handleResponseError): logged, connection closed.
        failed(e, "-", GATE_REQUEST_METHOD, PATH);
        outgoing.destroy();
      });
    return true;
  };
}

/** Status and headers as @hono/node-server writes a Response with plain headers; Node adds Content-Length. */
function send(incoming: IncomingMessage, outgoing: ServerResponse, a: Answer): void {
  // As @hono/node-server does with a body nobody read (refused before reading it): drain it
  // once the answer is out, within bounds, so the connection can carry the next request.
  if (!incoming.readableEnded) outgoing.once("close", () => laterDrain(incoming));
  outgoing.statusCode = a.status;
  for (const name in a.headers) outgoing.setHeader(name, a.headers[name]!);
  outgoing.end(a.body);
}

/** Two turns later, as @hono/node-server's close handler: Node's own dump of the body may have finished it by then. */
function laterDrain(incoming: IncomingMessage): void {
  if (incoming.readableEnded) return;
  setTimeout(() => {
    if (!incoming.readableEnded) setTimeout(() => drainUnread(incoming));
  });
}

const DRAIN_TIMEOUT_MS = 500;
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;
const draining = new WeakSet<IncomingMessage>();

/** Reads and drops an unread body: at most MAX_DRAIN_BYTES or DRAIN_TIMEOUT_MS, then the connection is closed (@hono/node-server's drainIncoming). */
function drainUnread(incoming: IncomingMessage): void {
  if (incoming.destroyed || draining.has(incoming)) return;
  draining.add(incoming);
  let bytesRead = 0;
  const cleanup = (): void => {
    clearTimeout(timer);
    incoming.off("data", onData);
    incoming.off("end", cleanup);
    incoming.off("error", cleanup);
  };
  const forceClose = (): void => {
    cleanup();
    const socket = incoming.socket;
    if (socket && !socket.destroyed) socket.destroySoon();
  };
  const timer = setTimeout(forceClose, DRAIN_TIMEOUT_MS);
  timer.unref();
  const onData = (chunk: Buffer): void => {
    bytesRead += chunk.length;
    if (bytesRead > MAX_DRAIN_BYTES) forceClose();
  };
  incoming.on("data", onData);
  incoming.on("end", cleanup);
  incoming.on("error", cleanup);
  incoming.resume();
}
