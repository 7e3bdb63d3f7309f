// The validated AccessRoute (docs/proxy.md): which public host (and path prefix, or TCP port) of
// the operator access proxy leads to which upstream, which service of the OperatorAccessPolicy it
// is, and how requests map to the policy's actions. Plain data, no behaviour.
import type { SourceRef } from "../model.js";

export const ACCESS_ROUTE_KIND = "AccessRoute";

/** Maps a request to a policy action; the first rule whose methods and path both match decides. */
export interface ActionRule {
  /** Upper-case methods; null: any method. */
  readonly methods: readonly string[] | null;
  /** A path glob: "*" is one segment, a final "**" any rest ("/logs/**"); null: any path. */
  readonly path: string | null;
  readonly action: string;
  readonly at: SourceRef;
}

/** How the proxy authenticates itself to the upstream. */
export interface UpstreamCredential {
  /** Present the engine's X.509-SVID (mTLS); false only for upstreams that take no client certificate. */
  readonly svid: boolean;
  /** A file whose contents are sent as `Authorization: Bearer …` (e.g. a Kubernetes service account token). */
  readonly bearerTokenFile: string | null;
  /** Send Kubernetes `Impersonate-User` / `Impersonate-Group` with the operator's subject and roles. */
  readonly impersonate: boolean;
}

interface RouteBase {
  readonly name: string;
  /** Lower-case public host name, without port. */
  readonly host: string;
  /** The OperatorAccessPolicy target service this route reaches. */
  readonly service: string;
  /** The upstream's expected SPIFFE ID (verified with the engine's trust bundle); null: its certificate is checked against the host name. */
  readonly upstreamSpiffeId: string | null;
  /** CA certificates (PEM file) for an upstream that is not a SPIFFE workload; null: the system's roots. */
  readonly caFile: string | null;
  readonly credential: UpstreamCredential;
  readonly at: SourceRef;
}

export interface HttpRoute extends RouteBase {
  readonly kind: "http";
  /** Path prefix on the public host, "/" for the whole host; always starts and ends with "/". */
  readonly prefix: string;
  /** Drop `prefix` from the path sent upstream (keeping a leading "/"). */
  readonly stripPrefix: boolean;
  /** https://host[:port][/base] of the upstream. */
  readonly upstream: URL;
  /** Send the public Host header upstream instead of the upstream's own. */
  readonly preserveHost: boolean;
  readonly websockets: boolean;
  readonly actions: readonly ActionRule[];
}

export interface TcpRoute extends RouteBase {
  readonly kind: "tcp";
  /** The public port a tunnel names in `CONNECT host:port`. */
  readonly port: number;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  /** Wrap the upstream connection in mTLS with the engine's SVID (targets behind a TLS sidecar). */
  readonly upstreamTls: boolean;
  /** The policy action every tunnel of this route asks for. */
  readonly action: string;
}

export type AccessRoute = HttpRoute | TcpRoute;

/** Requests not matched by any listed rule: reads are read, everything else is write. */
export const DEFAULT_ACTIONS: readonly Omit<ActionRule, "at">[] = [
  { methods: ["GET", "HEAD", "OPTIONS"], path: null, action: "read" },
  { methods: null, path: null, action: "write" },
];
