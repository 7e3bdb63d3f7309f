// A web console behind the proxy, as a real upstream would be: HTTPS that requires a client
// X.509-SVID from the trust bundle (mTLS), and that verifies X-Zt-Jwt-Assertion with the JWKS
// the proxy publishes (fetched from the proxy, refetched for an unknown kid), with its own
// issuer and audience checks. It answers what it saw; it also streams, echoes and speaks WebSocket.
import * as https from "node:https";
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";
import { WebSocketServer } from "ws";

export interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The verified assertion's claims, or why it did not verify. */
  readonly claims: JWTPayload | null;
  readonly assertionError: string | null;
  /** The client certificate's URI SAN (the proxy's SPIFFE ID). */
  readonly peer: string | null;
  readonly body: string;
}

export interface Upstream {
  readonly port: number;
  readonly seen: Seen[];
  /** JWKS fetches so far (a rotation makes the next unknown kid refetch once). */
  jwksFetches: number;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  readonly certPem: string;
  readonly keyPem: string;
  /** The SVID trust bundle: only clients with an SVID from it get in. */
  readonly caPem: string;
  /** Fetches the proxy's JWKS (the test knows how to reach the proxy by name). */
  readonly fetchJwks: () => Promise<JSONWebKeySet>;
  readonly issuer: string;
  readonly audience: string;
}

async function read(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startUpstream(opts: UpstreamOptions): Promise<Upstream> {
  const seen: Seen[] = [];
  let jwks: JSONWebKeySet = { keys: [] };
  const state = { jwksFetches: 0 };
  const refetch = async (): Promise<void> => {
    jwks = await opts.fetchJwks();
    state.jwksFetches++;
  };

  const verify = async (token: string | undefined): Promise<{ claims: JWTPayload | null; error: string | null }> => {
    if (!token) return { claims: null, error: "no assertion" };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: opts.issuer, audience: opts.audience, algorithms: ["ES256"], maxTokenAge: 600 });
        return { claims: payload, error: null };
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (attempt === 0 && (code === "ERR_JWKS_NO_MATCHING_KEY" || jwks.keys.length === 0)) {
          await refetch();
          continue;
        }
        return { claims: null, error: code ?? String(e) };
      }
    }
    return { claims: null, error: "unreachable" };
  };

  const server = https.createServer({ cert: opts.certPem, key: opts.keyPem, ca: opts.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "https://upstream");
      const v = await verify(req.headers["x-zt-jwt-assertion"] as string | undefined);
      const cert = (req.socket as TLSSocket).getPeerCertificate();
      const peer = cert?.subjectaltname?.match(/URI:([^,]+)/)?.[1] ?? null;
      if (url.pathname === "/stream") {
        // A long answer (logs -f): a chunk every 200 ms until `n` chunks were sent.
        const n = Number(url.searchParams.get("n") ?? "10");
        res.writeHead(200, { "content-type": "text/plain" });
        for (let i = 0; i < n && !res.destroyed; i++) {
          res.write(`line ${i}\n`);
          await new Promise((r) => setTimeout(r, 200));
        }
        res.end();
        return;
      }
      const body = await read(req);
      seen.push({ method: req.method ?? "", path: req.url ?? "", headers: { ...req.headers }, claims: v.claims, assertionError: v.error, peer, body });
      const headers: Record<string, string | string[]> = { "content-type": "application/json" };
      if (url.pathname.endsWith("/set-cookie")) headers["set-cookie"] = ["app=1; Path=/; Secure", "__Host-zt-session=stolen; Path=/; Secure"];
      res.writeHead(200, headers);
      res.end(JSON.stringify({ path: req.url, claims: v.claims, assertion_error: v.error, peer, body: body.length > 0 ? body : undefined }));
    })();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      void verify(req.headers["x-zt-jwt-assertion"] as string | undefined).then((v) => {
        ws.send(JSON.stringify({ hello: v.claims?.sub ?? null }));
        ws.on("message", (m) => ws.send(`echo:${String(m)}`));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    get jwksFetches() {
      return state.jwksFetches;
    },
    set jwksFetches(n: number) {
      state.jwksFetches = n;
    },
    close: () =>
      new Promise<void>((r) => {
        wss.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
