// Validation of POST /v1/evaluate bodies, written by hand for the hot path: no schema
// library, no closures or regexes built per request, strings built only on error.
// Unknown fields are refused so a typo (`"prot": 5432`) is an error, not a silent default.
import type { ServiceRequest } from "../../compiler/model.js";
import { parseSpiffeId } from "../../compiler/spiffe.js";
import { unstorableText } from "../audit/storable-text.js";

export interface ServiceItem {
  readonly kind: "service";
  readonly request: ServiceRequest;
  readonly source: { spiffe_id: string; pod: string | null; node: string | null };
  readonly destination: { spiffe_id: string; port: number };
}

export interface OperatorItem {
  readonly kind: "operator";
  readonly operator: { subject: string; roles: string[]; mfa: boolean; incident: string | null };
  readonly target: { service: string; action: string };
}

/**
 * An agent request: may the AI agent holding this JWT call the destination? The token is the
 * subject of the decision, verified against IAM's JWKS (host/identity/jwt.ts); it is never
 * a credential for calling the engine.
 */
export interface AgentItem {
  readonly kind: "agent";
  readonly token: string;
  readonly destination: { spiffe_id: string; port: number };
}

export type EvaluateItem = ServiceItem | OperatorItem | AgentItem;

export interface InputError {
  readonly kind: "error";
  readonly path: string;
  readonly message: string;
}

export const LIMITS = {
  name: 253,
  subject: 512,
  roles: 64,
  role: 253,
  incident: 128,
} as const;

// Valid IDs seen recently: parsing a SPIFFE ID costs ~1 µs and workloads repeat, so a
// bounded cache of IDs known to be valid makes the common case a Map lookup.
const VALID_IDS = new Map<string, true>();
const VALID_IDS_MAX = 8192;

function spiffeError(id: string): string | null {
  if (VALID_IDS.has(id)) return null;
  const r = parseSpiffeId(id);
  if (!r.ok) return r.error;
  if (VALID_IDS.size >= VALID_IDS_MAX) VALID_IDS.clear();
  VALID_IDS.set(id, true);
  return null;
}

function at(index: number, rest: string): string {
  return index < 0 ? "$" + rest : "$[" + index + "]" + rest;
}

function fail(index: number, rest: string, message: string): InputError {
  return { kind: "error", path: at(index, rest), message };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

/**
 * A client value in an error message: numbers as written, a short start of a string, other
 * values by their type. Never JSON.stringify: it recurses, and a value nested thousands deep
 * would overflow the stack on the error path.
 */
function shown(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v.length > 32 ? v.slice(0, 32) + "…" : v);
  if (Array.isArray(v)) return "an array";
  if (v !== null && typeof v === "object") return "an object";
  return String(v);
}

function optionalString(v: unknown, max: number, index: number, rest: string): string | null | InputError {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") return fail(index, rest, `expected a string or null, got ${typeName(v)}`);
  if (v.length === 0) return fail(index, rest, "must not be empty (omit it or use null)");
  if (v.length > max) return fail(index, rest, `longer than ${max} characters`);
  return storable(v, index, rest);
}

/** Text the audit trail could not store is refused here, with its path, not later as a refused record. */
function storable(v: string, index: number, rest: string): string | InputError {
  const problem = unstorableText(v);
  return problem === null ? v : fail(index, rest, problem);
}

function requiredName(v: unknown, max: number, index: number, rest: string): string | InputError {
  if (v === undefined) return fail(index, rest, "is required");
  if (typeof v !== "string") return fail(index, rest, `expected a string, got ${typeName(v)}`);
  if (v.length === 0) return fail(index, rest, "must not be empty");
  if (v.length > max) return fail(index, rest, `longer than ${max} characters`);
  return storable(v, index, rest);
}

function isError(v: unknown): v is InputError {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "error";
}

function parseService(body: Record<string, unknown>, index: number): ServiceItem | InputError {
  for (const k in body) if (k !== "source" && k !== "destination") return fail(index, "." + k, "unknown field (a service request has source and destination)");
  const src = body.source;
  if (!isObject(src)) return fail(index, ".source", `expected an object, got ${typeName(src)}`);
  for (const k in src) if (k !== "spiffe_id" && k !== "pod" && k !== "node") return fail(index, ".source." + k, "unknown field (allowed: spiffe_id, pod, node)");
  const dst = body.destination;
  if (dst === undefined) return fail(index, ".destination", "is required");
  if (!isObject(dst)) return fail(index, ".destination", `expected an object, got ${typeName(dst)}`);
  for (const k in dst) if (k !== "spiffe_id" && k !== "port") return fail(index, ".destination." + k, "unknown field (allowed: spiffe_id, port)");

  const sid = src.spiffe_id;
  if (typeof sid !== "string") return fail(index, ".source.spiffe_id", sid === undefined ? "is required" : `expected a string, got ${typeName(sid)}`);
  let e = spiffeError(sid);
  if (e !== null) return fail(index, ".source.spiffe_id", "invalid SPIFFE ID: " + e);
  const pod = optionalString(src.pod, LIMITS.name, index, ".source.pod");
  if (isError(pod)) return pod;
  const node = optionalString(src.node, LIMITS.name, index, ".source.node");
  if (isError(node)) return node;

  const did = dst.spiffe_id;
  if (typeof did !== "string") return fail(index, ".destination.spiffe_id", did === undefined ? "is required" : `expected a string, got ${typeName(did)}`);
  e = spiffeError(did);
  if (e !== null) return fail(index, ".destination.spiffe_id", "invalid SPIFFE ID: " + e);
  const port = dst.port;
  if (port === undefined) return fail(index, ".destination.port", "is required");
  // Port 0 is not a destination anyone connects to (and the audit trail refuses it).
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return fail(index, ".destination.port", `expected an integer port 1..65535, got ${shown(port)}`);
  }
  return {
    kind: "service",
    request: { source: sid, destination: did, port },
    source: { spiffe_id: sid, pod, node },
    destination: { spiffe_id: did, port },
  };
}

function parseOperator(body: Record<string, unknown>, index: number): OperatorItem | InputError {
  for (const k in body) if (k !== "operator" && k !== "target") return fail(index, "." + k, "unknown field (an operator request has operator and target)");
  const op = body.operator;
  if (!isObject(op)) return fail(index, ".operator", `expected an object, got ${typeName(op)}`);
  for (const k in op) {
    if (k !== "subject" && k !== "roles" && k !== "mfa" && k !== "incident") return fail(index, ".operator." + k, "unknown field (allowed: subject, roles, mfa, incident)");
  }
  const tg = body.target;
  if (tg === undefined) return fail(index, ".target", "is required");
  if (!isObject(tg)) return fail(index, ".target", `expected an object, got ${typeName(tg)}`);
  for (const k in tg) if (k !== "service" && k !== "action") return fail(index, ".target." + k, "unknown field (allowed: service, action)");

  const subject = requiredName(op.subject, LIMITS.subject, index, ".operator.subject");
  if (isError(subject)) return subject;
  const rolesIn = op.roles;
  if (!Array.isArray(rolesIn)) return fail(index, ".operator.roles", rolesIn === undefined ? "is required" : `expected an array of strings, got ${typeName(rolesIn)}`);
  if (rolesIn.length > LIMITS.roles) return fail(index, ".operator.roles", `more than ${LIMITS.roles} roles`);
  const roles: string[] = new Array<string>(rolesIn.length);
  for (let i = 0; i < rolesIn.length; i++) {
    const r = requiredName(rolesIn[i], LIMITS.role, index, ".operator.roles[" + i + "]");
    if (isError(r)) return r;
    roles[i] = r;
  }
  const mfa = op.mfa;
  if (typeof mfa !== "boolean") return fail(index, ".operator.mfa", mfa === undefined ? "is required" : `expected true or false, got ${typeName(mfa)}`);
  const incident = optionalString(op.incident, LIMITS.incident, index, ".operator.incident");
  if (isError(incident)) return incident;
  const service = requiredName(tg.service, LIMITS.name, index, ".target.service");
  if (isError(service)) return service;
  const action = requiredName(tg.action, LIMITS.name, index, ".target.action");
  if (isError(action)) return action;
  return { kind: "operator", operator: { subject, roles, mfa, incident }, target: { service, action } };
}

function parseAgent(body: Record<string, unknown>, index: number): AgentItem | InputError {
  for (const k in body) if (k !== "agent" && k !== "destination") return fail(index, "." + k, "unknown field (an agent request has agent and destination)");
  const ag = body.agent;
  if (!isObject(ag)) return fail(index, ".agent", `expected an object {"token": "<jwt>"}, got ${typeName(ag)}`);
  for (const k in ag) if (k !== "token") return fail(index, ".agent." + k, "unknown field (allowed: token)");
  const token = ag.token;
  if (typeof token !== "string") return fail(index, ".agent.token", token === undefined ? "is required" : `expected a string (the agent's JWT), got ${typeName(token)}`);
  if (token.length === 0) return fail(index, ".agent.token", "must not be empty");
  const dst = body.destination;
  if (dst === undefined) return fail(index, ".destination", "is required");
  if (!isObject(dst)) return fail(index, ".destination", `expected an object, got ${typeName(dst)}`);
  for (const k in dst) if (k !== "spiffe_id" && k !== "port") return fail(index, ".destination." + k, "unknown field (allowed: spiffe_id, port)");
  const did = dst.spiffe_id;
  if (typeof did !== "string") return fail(index, ".destination.spiffe_id", did === undefined ? "is required" : `expected a string, got ${typeName(did)}`);
  const e = spiffeError(did);
  if (e !== null) return fail(index, ".destination.spiffe_id", "invalid SPIFFE ID: " + e);
  const port = dst.port;
  if (port === undefined) return fail(index, ".destination.port", "is required");
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return fail(index, ".destination.port", `expected an integer port 1..65535, got ${shown(port)}`);
  }
  // An over-long token is not refused here: the verifier rejects it as malformed_token, audited.
  return { kind: "agent", token, destination: { spiffe_id: did, port } };
}

/** Validates one request; `index` is its position in a batch, or -1 for a single request. */
export function parseEvaluateItem(value: unknown, index: number): EvaluateItem | InputError {
  if (!isObject(value)) return fail(index, "", `expected a request object, got ${typeName(value)}`);
  if (value.source !== undefined) return parseService(value, index);
  if (value.operator !== undefined) return parseOperator(value, index);
  if (value.agent !== undefined) return parseAgent(value, index);
  return fail(index, "", 'expected a service request (with "source" and "destination"), an operator request (with "operator" and "target") or an agent request (with "agent" and "destination")');
}
