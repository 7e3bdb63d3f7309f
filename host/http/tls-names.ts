// Extensions with public TLS names on the mTLS API listener (extension.ts, ExtensionTls): the
// SNI selects the extension's certificate, and only connections for the API's own names must
// present a client SVID. Node's rejectUnauthorized is per server, so the listener asks for a
// certificate from everyone and this check, right after each handshake and before any request
// is read, drops an unauthorised connection unless an extension admitted its name.
import type { ServerOptions } from "node:https";
import type { Socket } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import type { Extension } from "./extension.js";

const admitted = new WeakMap<Socket, Extension>();

/** The extension that admitted this connection by its TLS name, if any. */
export function admittedBy(socket: Socket | null | undefined): Extension | null {
  return socket ? (admitted.get(socket) ?? null) : null;
}

function owner(extensions: readonly Extension[], servername: string | false | null | undefined): Extension | null {
  if (!servername) return null;
  const name = servername.toLowerCase();
  for (const ext of extensions) if (ext.tls?.serves(name)) return ext;
  return null;
}

/** HTTPS options that serve the extensions' names with their own contexts. */
export function withExtensionNames(options: ServerOptions, extensions: readonly Extension[]): ServerOptions {
  if (!extensions.some((e) => e.tls)) return options;
  return {
    ...options,
    rejectUnauthorized: false,
    SNICallback: (servername, cb) => {
      const ext = owner(extensions, servername);
      // A falsy context means the server's default one: the engine's SVID.
      cb(null, ext ? ext.tls!.secureContext() : undefined);
    },
  };
}

/**
 * Installs the per-connection check on a listener built with withExtensionNames: a connection
 * for an extension's name is marked for it; any other must carry a verified client certificate
 * (what rejectUnauthorized did), else it is closed before a request is read.
 */
export function enforceClientCertificates(server: TlsServer, extensions: readonly Extension[], onReject: (socket: TLSSocket) => void): void {
  if (!extensions.some((e) => e.tls)) return;
  server.prependListener("secureConnection", (socket: TLSSocket) => {
    const ext = owner(extensions, socket.servername);
    if (ext) {
      admitted.set(socket, ext);
      return;
    }
    if (!socket.authorized) {
      onReject(socket);
      socket.destroy();
    }
  });
}
