// What one connection may hold of the engine: timeouts chosen for an API, and backpressure
// for pipelining. HTTP/1.1 answers leave in request order, so a client that pipelines
// requests without reading the answers would have the engine decide them all and buffer
// every answer (ten 10,000-request batches: ~25 MB of answers, 1.5 GB RSS). Here a connection
// with MAX_IN_PROGRESS requests in progress, or with an answer the client has not taken, is
// not read from until that changes; one that takes none of its answers for `stallTimeoutMs`
// is closed. Node's own pipelining check only looks when a request starts, before the
// answers of the ones before it exist, so it lets a burst of large requests through.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface ConnectionLimits {
  /** Complete request headers must arrive within this (slowloris). */
  readonly headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this; longer than the usual 60 s idle timeout of clients and load balancers, so they close first. */
  readonly keepAliveTimeoutMs: number;
  /** A connection that takes none of its pending answers for this long is closed. */
  readonly stallTimeoutMs: number;
}

/** Requests of one connection in progress at once; the next one is not read until an answer is taken. */
export const MAX_IN_PROGRESS = 2;

interface ConnState {
  inProgress: number;
  held: boolean;
  stall: NodeJS.Timeout | null;
}

// Node's http server reads the next request of a paused connection only when `_paused` is
// clear (IncomingMessage.readStart, socketOnDrain): the flag it sets for its own pipelining
// check. Setting it is what keeps a body read of an already-started request from resuming
// the socket behind our back.
type PausableSocket = Socket & { _paused?: boolean; parser?: { pause(): void; resume(): void } | null };

export function applyConnectionLimits(server: Server, limits: ConnectionLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  const states = new WeakMap<Socket, ConnState>();

  const disarm = (st: ConnState): void => {
    if (st.stall !== null) clearTimeout(st.stall);
    st.stall = null;
  };
  const arm = (socket: Socket, st: ConnState): void => {
    st.stall ??= setTimeout(() => socket.destroy(), limits.stallTimeoutMs).unref();
  };
  const hold = (socket: PausableSocket, st: ConnState): void => {
    if (!st.held) {
      st.held = true;
      socket._paused = true;
      socket.pause();
    }
    // Only a client that is not taking its answers is timed out; a slow answer is not its fault.
    if (socket.writableNeedDrain) arm(socket, st);
  };
  const release = (socket: PausableSocket, st: ConnState): void => {
    if (socket.writableNeedDrain) return;
    disarm(st);
    if (!st.held || st.inProgress >= MAX_IN_PROGRESS) return;
    st.held = false;
    socket._paused = false;
    socket.parser?.resume();
    socket.resume();
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as PausableSocket;
    let st = states.get(socket);
    if (st === undefined) {
      const s: ConnState = { inProgress: 0, held: false, stall: null };
      st = s;
      states.set(socket, s);
      socket.on("drain", () => release(socket, s));
      socket.once("close", () => disarm(s));
    }
    const s = st;
    s.inProgress++;
    // An answer that did not fit in the socket's buffers: the client is not reading (yet).
    res.once("prefinish", () => {
      if (socket.writableNeedDrain) arm(socket, s);
    });
    res.once("close", () => {
      s.inProgress--;
      release(socket, s);
    });
    if (s.inProgress >= MAX_IN_PROGRESS || socket.writableNeedDrain) hold(socket, s);
  });
}
