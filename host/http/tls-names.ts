// Extensions with public TLS names on the engine's listener (extension.ts, ExtensionTls): the SNI
// selects the extension's certificate (the access proxy's public one, for browsers), every other
// name gets the engine's SVID. Who may do what on a connection is not decided here: the identity
// gate does that per request (a connection without a valid SVID reaches only `own` routes and
// the requests an extension claims with an `own` line, host/http/route-identity.ts).
import type { ServerOptions } from "node:https";
import type { Extension } from "./extension.js";

function owner(extensions: readonly Extension[], servername: string): Extension | null {
  const name = servername.toLowerCase();
  for (const ext of extensions) if (ext.tls?.serves(name)) return ext;
  return null;
}

/** HTTPS options that serve the extensions' names with their own contexts. */
export function withExtensionNames(options: ServerOptions, extensions: readonly Extension[]): ServerOptions {
  if (!extensions.some((e) => e.tls)) return options;
  return {
    ...options,
    SNICallback: (servername, cb) => {
      const ext = owner(extensions, servername);
      // A falsy context means the server's default one: the engine's SVID.
      cb(null, ext ? ext.tls!.secureContext() : undefined);
    },
  };
}
