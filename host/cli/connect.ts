// zt connect <route-host:port> [--listen [addr:]port] [--proxy addr:port] [--ca file] [--incident ID] [--no-browser]
// A TCP connection to a route through the access proxy: on stdin/stdout (an SSH ProxyCommand),
// or for every connection to a local port (psql, kubectl port-forward style). Each connection is
// one tunnel, decided and audited by the proxy. Signs in with the browser when needed.
import { createServer, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { INCIDENT_ID } from "../engine/incidents.js";
import { EXIT, UsageError } from "./io.js";
import { type ProxyRefusal, type ProxyTarget, parseTarget, tunnel } from "./proxy-client.js";

const USAGE = "usage: zt connect <route-host:port> [--listen [addr:]port] [--proxy addr:port] [--ca file.pem] [--incident ID] [--no-browser]";

function say(line: string): void {
  process.stderr.write(`zt connect: ${line}\n`);
}

function refused(r: ProxyRefusal): number {
  say(`refused (${r.status} ${r.code}): ${r.message}${r.decisionId ? ` [decision ${r.decisionId}]` : ""}`);
  return r.status === 403 ? EXIT.deny : EXIT.internal;
}

/** stdin/stdout <-> one tunnel; resolves with the exit code when either side ends. */
async function stdio(t: ProxyTarget, incident: string | null): Promise<number> {
  const r = await tunnel(t, incident, say);
  if (!r.ok) return refused(r.refusal);
  const { socket, head } = r;
  if (head.length > 0) process.stdout.write(head);
  return new Promise((resolve) => {
    process.stdin.pipe(socket);
    socket.pipe(process.stdout);
    socket.resume();
    process.stdin.on("end", () => socket.end());
    socket.on("close", () => resolve(EXIT.ok));
    socket.on("error", (e) => {
      say(`tunnel error: ${e.message}`);
      resolve(EXIT.internal);
    });
  });
}

function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:([0-9.]+|\[[0-9a-f:]+\]|localhost):)?(\d{1,5})$/i.exec(v);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen "${v}" is not [addr:]port`);
  return { host: (m[1] ?? "127.0.0.1").replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/** A local port: every connection to it is a tunnel of its own. Runs until SIGINT/SIGTERM. */
async function listen(t: ProxyTarget, incident: string | null, where: { host: string; port: number }): Promise<number> {
  // Sign in (and step up) before the first client connects, not while it waits.
  const first = await tunnel(t, incident, say);
  if (!first.ok) return refused(first.refusal);
  first.socket.destroy();
  const server = createServer((local: Socket) => {
    local.pause();
    void tunnel(t, incident, say).then(
      (r) => {
        if (!r.ok) {
          refused(r.refusal);
          local.destroy();
          return;
        }
        if (r.head.length > 0) local.write(r.head);
        local.pipe(r.socket);
        r.socket.pipe(local);
        r.socket.resume();
        local.resume();
        local.on("error", () => r.socket.destroy());
        r.socket.on("error", () => local.destroy());
        local.on("close", () => r.socket.end());
        r.socket.on("close", () => local.end());
      },
      (e: unknown) => {
        say(`tunnel failed: ${(e as Error).message}`);
        local.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(where.port, where.host, () => resolve());
  });
  const addr = server.address() as { address: string; port: number };
  say(`listening on ${addr.address}:${addr.port} for ${t.host}:${t.port}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  server.close();
  return EXIT.ok;
}

export async function connectCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      listen: { type: "string" },
      proxy: { type: "string" },
      ca: { type: "string" },
      incident: { type: "string" },
      "no-browser": { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(USAGE);
  if (!/:\d{1,5}$/.test(positionals[0]!)) throw new UsageError(`${USAGE}\n(a TCP route is host:port, as its "from: tcp+https://host:port")`);
  const t = parseTarget(positionals[0], values);
  const incident = values.incident ?? null;
  if (incident !== null && !INCIDENT_ID.test(incident)) throw new UsageError(`--incident "${incident}" is not an incident id`);
  return values.listen !== undefined ? listen(t, incident, parseListen(values.listen)) : stdio(t, incident);
}
