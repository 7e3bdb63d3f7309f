// A fetch for the issuer's endpoints (discovery, token, JWKS) that trusts extra CA certificates
// (ZT_OIDC_CA_FILE, e.g. an internal IAM), since Node's global fetch takes no CA option. Only
// what openid-client and jose ask of fetch: a method, headers, a small body, an abort signal.
import * as https from "node:https";

export interface FetchOptions {
  readonly method: string;
  readonly headers: Headers | Record<string, string>;
  readonly body?: string | Uint8Array | ArrayBuffer | URLSearchParams | ReadableStream | null;
  readonly signal?: AbortSignal;
}

/** Most bytes read from an issuer response (discovery documents and JWKS are a few KiB). */
const MAX_RESPONSE = 1024 * 1024;

async function bodyBytes(body: FetchOptions["body"]): Promise<Buffer | null> {
  if (body === undefined || body === null) return null;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body);
  return Buffer.from(await new Response(body).arrayBuffer());
}

export function fetchTrusting(caPem: string): (url: string, options: FetchOptions) => Promise<Response> {
  const agent = new https.Agent({ ca: caPem, keepAlive: true });
  return async (url, options) => {
    const body = await bodyBytes(options.body);
    const headers: Record<string, string> = {};
    new Headers(options.headers as HeadersInit).forEach((v, k) => (headers[k] = v));
    if (body) headers["content-length"] = String(body.length);
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(url, { method: options.method, headers, agent, signal: options.signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE) req.destroy(new Error(`response from ${new URL(url).origin} is larger than ${MAX_RESPONSE} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (Array.isArray(v)) for (const x of v) out.append(k, x);
            else if (v !== undefined) out.set(k, v);
          }
          const status = res.statusCode ?? 502;
          const nullBody = status === 204 || status === 304 || options.method === "HEAD";
          resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? "", headers: out }));
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body ?? undefined);
    });
  };
}
