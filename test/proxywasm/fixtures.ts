// Shared test fixtures: policy modules built by the real compiler, a real HTTP ingest server
// that validates bodies with the engine's own validator, and helpers to drive requests.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { compilePolicySet, type CompiledModule } from "../../compiler/compile.js";
import { buildPolicySet } from "../../compiler/load.js";
import { parsePolicyText } from "../../compiler/parse.js";
import type { Policy } from "../../compiler/model.js";
import { validateIngestBody } from "../../host/audit/validate.js";
import type { AuditRecord } from "../../host/audit/record.js";

export const IAM = "spiffe://hanzo.ai/hanzo-k8s/hanzo/iam";
export const GATEWAY = "spiffe://hanzo.ai/hanzo-k8s/hanzo/gateway";
export const CHAT = "spiffe://hanzo.ai/hanzo-k8s/hanzo/chat";
export const POSTGRES = "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres";
export const REDIS = "spiffe://hanzo.ai/hanzo-k8s/hanzo/redis";

/** The seed's policy plus a DENY rule, a wildcard and a per-destination rollout. */
export const CORE_POLICY = `
apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: hanzo-core-policy
spec:
  rules:
    - from:
        spiffe: "${IAM}"
      to:
        - spiffe: "${POSTGRES}"
          ports: [5432]
        - spiffe: "${REDIS}"
          ports: [6379]
    - from:
        spiffe: "${GATEWAY}"
      to:
        - spiffe: "${IAM}"
          ports: [8000]
        - spiffe: "${POSTGRES}"
          ports: [5432]
    - name: chat-to-gateway
      from:
        spiffe: "${CHAT}"
      to:
        - spiffe: "${GATEWAY}"
          ports: [4000]
    - name: no-chat-to-redis
      action: DENY
      from:
        spiffe: "spiffe://hanzo.ai/hanzo-k8s/hanzo/*"
      to:
        - spiffe: "${REDIS}"
          ports: [6379]
  rollout:
    - destination: "${REDIS}"
      mode: observe
  defaultAction: DENY
`;

/** A plain GET's pseudo-headers (what the filter sees on request headers). */
export const GET: Array<[string, string]> = [
  [":method", "GET"],
  [":path", "/"],
];

export function policiesFromText(...texts: string[]): Policy[] {
  const out: Policy[] = [];
  texts.forEach((t, i) => {
    const parsed = parsePolicyText(t, `policy-${i}.yaml`);
    if (!parsed.ok) throw new Error(`bad test policy: ${JSON.stringify(parsed.errors)}`);
    out.push(...parsed.policies);
  });
  return out;
}

export function buildModule(...texts: string[]): CompiledModule {
  return buildModuleFromPolicies(policiesFromText(...texts));
}

export function buildModuleFromPolicies(policies: Policy[]): CompiledModule {
  const set = buildPolicySet(policies);
  if (!set.ok) throw new Error(`bad test policy set: ${JSON.stringify(set.errors)}`);
  return compilePolicySet(set.set);
}

/** Connection properties as Envoy exposes them on an mTLS connection. */
export function mtlsProperties(peer: string | null, local: string | null, port: number): Record<string, string | bigint | boolean> {
  const p: Record<string, string | bigint | boolean> = {
    "destination.port": BigInt(port),
    "source.address": "10.0.0.7:51234",
    "connection.mtls": peer !== null,
  };
  if (peer !== null) p["connection.uri_san_peer_certificate"] = peer;
  if (local !== null) p["connection.uri_san_local_certificate"] = local;
  return p;
}

export interface IngestServer {
  readonly url: string;
  readonly records: AuditRecord[];
  /** Every request: status answered and the Authorization header seen. */
  readonly requests: Array<{ status: number; authorization: string | undefined; path: string | undefined; count: number }>;
  /** Status to answer next (default 202); validation failures answer 400 regardless. */
  nextStatus: number;
  close(): Promise<void>;
}

/** A real HTTP server standing in for POST /v1/audit/ingest, validating with host/audit/validate.ts. */
export async function startIngestServer(token: string): Promise<IngestServer> {
  const state = { records: [] as AuditRecord[], requests: [] as IngestServer["requests"], nextStatus: 202 };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const reply = (status: number, body: unknown, count = 0): void => {
        state.requests.push({ status, authorization: req.headers.authorization, path: req.url, count });
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (req.method !== "POST" || req.url !== "/v1/audit/ingest") return reply(404, { error: "not found" });
      if (req.headers.authorization !== `Bearer ${token}`) return reply(401, { error: "unauthorized" });
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        return reply(400, { error: `invalid JSON: ${(e as Error).message}` });
      }
      const v = validateIngestBody(body);
      if (!v.ok) return reply(400, { error: v.error.message, path: v.error.path });
      const status = state.nextStatus;
      if (status >= 200 && status < 300) state.records.push(...v.value);
      reply(status, { accepted: status < 300 ? v.value.length : 0 }, v.value.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    records: state.records,
    requests: state.requests,
    get nextStatus() {
      return state.nextStatus;
    },
    set nextStatus(s: number) {
      state.nextStatus = s;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A port nothing listens on (bound then released). */
export async function closedPort(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
