// How the audit trail opens PostgreSQL connections (engine thread and writer thread alike).
import { Socket } from "node:net";
import postgres, { type Sql } from "postgres";

/** What the driver passes its `socket` option (an undocumented option: not in its typings). */
interface SocketTarget {
  host: string[];
  port: number[];
  path: string | false;
}

let nextHost = 0;

/**
 * The driver's own socket with TCP_NODELAY, which it does not set. The writer's COPY ends with
 * a 5-byte CopyDone behind the batch's data; under Nagle that message waits for the server's
 * delayed ACK (40 ms on Linux) before it is sent, and a batch of 1,000 rows took 80 ms instead
 * of 15. The socket is returned connecting: Node queues the driver's first writes until it is
 * connected, and the driver's connect_timeout, error and retry handling apply as with its own.
 * A multi-host DSN is tried host after host, one per connection attempt.
 */
function noDelaySocket(target: SocketTarget): Socket {
  const socket = new Socket();
  socket.setNoDelay(true);
  if (target.path) return socket.connect(target.path);
  const i = nextHost++ % target.host.length;
  return socket.connect(target.port[i] ?? (target.port[0] as number), target.host[i] as string);
}

/**
 * No connection runs postgres.js's array-type query at connect: when the server goes away
 * during that query the driver rejects a promise nobody holds (porsager/postgres#1192), an
 * unhandled rejection that would end the engine during an outage. Reads get the one array
 * column as JSON instead (recordSelectList in chain.ts).
 */
export function connect(dsn: string, max: number, app: string): Sql {
  return postgres(dsn, {
    max,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: () => undefined,
    connection: { application_name: app },
    fetch_types: false,
    ...({ socket: noDelaySocket } as object),
  });
}
