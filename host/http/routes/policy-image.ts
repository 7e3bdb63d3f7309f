// GET /v1/policy-image: the active policy image for sidecars (docs/envoy.md, "How a policy
// update reaches the sidecars"). ETag = the version of the module the image belongs to,
// x-zt-image-sha256 = the digest the filter checks inside the module. A long poll: with
// If-None-Match and a wait (`?wait=<seconds>` or `Prefer: wait=<seconds>`, as OPA's bundle
// service takes it) the answer is 200 at once when the active version is not among the
// tags, else the request is held until one that is not becomes active (200) or the wait
// ends (304). Mounted behind the same authentication as audit ingest (the sidecar token or
// the caller's SVID); compressed when the client accepts it and it saves a tenth.
// GET /v1/filter.wasm: the filter module itself, without a policy image (open, like
// /v1/module.wasm): what sidecars load, then fill by sync.
import { createHash } from "node:crypto";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { EngineEnv } from "../context.js";
import { errorResponse } from "../errors.js";
import { type ImageEncoding, policyImageOf } from "../../engine/policy-image.js";
import type { Closable, PolicyWatch } from "../../engine/policy-watch.js";
import type { ActivePolicies } from "../../engine/policy-store.js";

export const POLICY_IMAGE_PATH = "/v1/policy-image";
/** The filter module without a policy image: its bytes change only with the evaluator. */
export const FILTER_MODULE_PATH = "/v1/filter.wasm";
export const POLICY_IMAGE_TYPE = "application/vnd.zt.policy-image";

export interface PolicyImageRouteDeps {
  /** The evaluator + filter code the engine links images into (build/evaluator.wasm). */
  readonly filterModule: () => Uint8Array;
  readonly store: { current(): ActivePolicies | null };
  readonly watch: PolicyWatch;
  readonly admin: MiddlewareHandler<EngineEnv>;
  /** The longest wait a client may ask for. */
  readonly maxWaitMs: number;
  /** Answers by status (metrics). */
  readonly count?: (status: 200 | 304) => void;
}

/** The entity tags of an If-None-Match header ("*" matches any version). */
export function parseIfNoneMatch(header: string | undefined): string[] | "*" {
  if (header === undefined) return [];
  if (header.trim() === "*") return "*";
  const tags: string[] = [];
  for (const m of header.matchAll(/(?:W\/)?"([^"]*)"/g)) tags.push(m[1]!);
  return tags;
}

/**
 * A request header, read from Node's own header object when there is one: a held poll keeps
 * its context alive for the whole wait, and Hono's Headers copy would stay with it.
 */
function headerOf(c: Context<EngineEnv>, name: string): string | undefined {
  const incoming = (c.env as { incoming?: { headers: Record<string, string | string[] | undefined> } } | undefined)?.incoming;
  if (incoming === undefined) return c.req.header(name);
  const v = incoming.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/** Seconds from `?wait=` or `Prefer: wait=`; null when absent, NaN when not a whole number. */
function requestedWait(c: Context<EngineEnv>): number | null {
  const q = /[?&]wait=([^&]*)/.exec(c.req.url);
  if (q) return /^\d{1,6}$/.test(q[1]!) ? Number(q[1]) : NaN;
  const prefer = /(?:^|[,;\s])wait=(\d{1,6})(?:$|[,;\s])/i.exec(headerOf(c, "prefer") ?? "");
  return prefer ? Number(prefer[1]) : null;
}

/** br before gzip, each only when the client lists it with a q above 0. */
function acceptedEncodings(header: string | undefined): ImageEncoding[] {
  if (!header) return [];
  const ok = new Set<string>();
  for (const part of header.split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)).find((m) => m !== null);
    if (name && (q === undefined || Number(q[1]) > 0)) ok.add(name);
  }
  return (["br", "gzip"] as const).filter((e) => ok.has(e));
}

export function policyImageRoutes(deps: PolicyImageRouteDeps): Hono<EngineEnv> {
  const app = new Hono<EngineEnv>();

  app.get(POLICY_IMAGE_PATH, deps.admin, async (c) => {
    const seconds = requestedWait(c);
    if (seconds !== null && !(seconds * 1000 <= deps.maxWaitMs)) {
      return errorResponse(c, 400, { code: "invalid_wait", message: `wait must be a whole number of seconds from 0 to ${deps.maxWaitMs / 1000}`, path: "wait" });
    }
    const tags = parseIfNoneMatch(headerOf(c, "if-none-match"));
    const current = deps.store.current();
    if (current === null) return errorResponse(c, 503, { code: "no_module", message: "no policy module is loaded" });
    const known = tags === "*" ? [current.version] : tags;
    // The caller hanging up releases its waiter at once (no socket, no memory held for it).
    const outgoing = (c.env as { outgoing?: Closable } | undefined)?.outgoing;
    const active = await deps.watch.wait(known, (seconds ?? 0) * 1000, outgoing);
    if (active === null) {
      deps.count?.(304);
      const now = deps.store.current();
      return c.body(null, 304, { etag: `"${now?.version ?? current.version}"`, "cache-control": "no-cache" });
    }
    const image = policyImageOf(active);
    const headers: Record<string, string> = {
      etag: `"${image.version}"`,
      "x-zt-policy-version": image.version,
      "x-zt-image-sha256": image.sha256,
      "x-zt-image-format": String(image.format),
      "content-type": POLICY_IMAGE_TYPE,
      "cache-control": "no-cache",
      vary: "accept-encoding",
    };
    let body = image.bytes;
    for (const encoding of acceptedEncodings(headerOf(c, "accept-encoding"))) {
      const encoded = await image.encoded(encoding);
      if (encoded !== null) {
        body = encoded;
        headers["content-encoding"] = encoding;
        break;
      }
    }
    deps.count?.(200);
    return c.body(body as Uint8Array<ArrayBuffer>, 200, headers);
  });

  // What `zt envoy-config --engine` points Envoy at: stable across policy writes (its sha256
  // in the filter config stays true), so a restarted sidecar loads it and then syncs.
  app.get(FILTER_MODULE_PATH, (c) => {
    const bytes = deps.filterModule();
    const sha = filterSha(bytes);
    const headers = { etag: `"sha256:${sha}"`, "x-zt-module-sha256": sha, "cache-control": "no-cache" };
    if (parseIfNoneMatch(c.req.header("if-none-match")).includes(`sha256:${sha}`)) return c.body(null, 304, headers);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { ...headers, "content-type": "application/wasm" });
  });

  return app;
}

const shaCache = new WeakMap<Uint8Array, string>();

function filterSha(bytes: Uint8Array): string {
  let s = shaCache.get(bytes);
  if (s === undefined) {
    s = createHash("sha256").update(bytes).digest("hex");
    shaCache.set(bytes, s);
  }
  return s;
}
