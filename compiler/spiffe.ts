// SPIFFE IDs and the SPIFFE patterns of the policy language.
// The ID rules follow the SPIFFE ID spec (spiffe/standards SPIFFE-ID.md): scheme "spiffe",
// a lowercase trust domain of [a-z0-9.-_], path segments of [a-zA-Z0-9.-_], no empty,
// "." or ".." segment, no trailing slash, no percent-encoding, no query or fragment.
// This is the single SPIFFE parser of the project: the policy validator, the host and
// the identity code all call it.

export const SPIFFE_SCHEME = "spiffe://";
export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;

export interface SpiffeId {
  readonly trustDomain: string;
  /** Path segments, without slashes; empty for the trust domain's own ID. */
  readonly segments: readonly string[];
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const SEGMENT_CHAR = /^[a-zA-Z0-9._-]$/;

function checkTrustDomain(td: string): string | null {
  if (td.length === 0) return "trust domain is missing";
  if (td.length > MAX_TRUST_DOMAIN_BYTES) return `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  for (const ch of td) {
    if (!TRUST_DOMAIN_CHAR.test(ch)) {
      if (ch === "%") return "trust domain must not be percent-encoded";
      if (ch === ":") return "trust domain must not contain a port";
      if (ch === "@") return "trust domain must not contain user info";
      if (/[A-Z]/.test(ch)) return `trust domain must be lowercase (found "${ch}")`;
      return `trust domain has an invalid character "${ch}" (allowed: a-z 0-9 . - _)`;
    }
  }
  return null;
}

function checkSegment(seg: string): string | null {
  if (seg.length === 0) return "path has an empty segment (double or trailing slash)";
  if (seg === "." || seg === "..") return `path segment "${seg}" is not allowed`;
  for (const ch of seg) {
    if (!SEGMENT_CHAR.test(ch)) {
      if (ch === "%") return "path must not be percent-encoded";
      if (ch === "?" || ch === "#") return "SPIFFE ID must not have a query or fragment";
      return `path segment "${seg}" has an invalid character "${ch}" (allowed: a-z A-Z 0-9 . - _)`;
    }
  }
  return null;
}

function splitId(text: string): ParseResult<{ td: string; rest: string[] | null }> {
  if (typeof text !== "string") return { ok: false, error: "SPIFFE ID must be a string" };
  if (text.length === 0) return { ok: false, error: "SPIFFE ID is empty" };
  if (Buffer.byteLength(text) > MAX_SPIFFE_ID_BYTES) return { ok: false, error: `SPIFFE ID is longer than ${MAX_SPIFFE_ID_BYTES} bytes` };
  if (!text.startsWith(SPIFFE_SCHEME)) {
    if (text.toLowerCase().startsWith(SPIFFE_SCHEME)) return { ok: false, error: 'scheme must be lowercase "spiffe://"' };
    return { ok: false, error: 'SPIFFE ID must start with "spiffe://"' };
  }
  const body = text.slice(SPIFFE_SCHEME.length);
  const slash = body.indexOf("/");
  const td = slash < 0 ? body : body.slice(0, slash);
  const tdErr = checkTrustDomain(td);
  if (tdErr) return { ok: false, error: tdErr };
  if (slash < 0) return { ok: true, value: { td, rest: null } };
  return { ok: true, value: { td, rest: body.slice(slash + 1).split("/") } };
}

/** Parses a concrete SPIFFE ID (no wildcards). */
export function parseSpiffeId(text: string): ParseResult<SpiffeId> {
  const split = splitId(text);
  if (!split.ok) return split;
  const { td, rest } = split.value;
  if (rest === null) return { ok: true, value: { trustDomain: td, segments: [] } };
  if (rest.length === 1 && rest[0] === "") return { ok: false, error: "SPIFFE ID must not end with a slash" };
  for (let i = 0; i < rest.length; i++) {
    const seg = rest[i]!;
    if (seg === "" && i === rest.length - 1) return { ok: false, error: "SPIFFE ID must not end with a slash" };
    const err = checkSegment(seg);
    if (err) return { ok: false, error: err };
  }
  return { ok: true, value: { trustDomain: td, segments: rest } };
}

export function isSpiffeId(text: string): boolean {
  return parseSpiffeId(text).ok;
}

export function formatSpiffeId(id: SpiffeId): string {
  return SPIFFE_SCHEME + id.trustDomain + id.segments.map((s) => "/" + s).join("");
}

/**
 * A segment of a SPIFFE pattern: a literal segment, `*` (exactly one segment) or
 * `**` (one or more segments; only as the last segment).
 */
export type PatternSegment = { kind: "literal"; value: string } | { kind: "star" } | { kind: "globstar" };

export interface SpiffePattern {
  readonly text: string;
  /** The trust domain is always literal. */
  readonly trustDomain: string;
  readonly segments: readonly PatternSegment[];
}

export function parseSpiffePattern(text: string): ParseResult<SpiffePattern> {
  const split = splitId(text);
  if (!split.ok) {
    if (typeof text === "string" && text.startsWith(SPIFFE_SCHEME) && /^[^/]*\*/.test(text.slice(SPIFFE_SCHEME.length))) {
      return { ok: false, error: "the trust domain of a SPIFFE pattern is always literal: wildcards are only allowed as whole path segments" };
    }
    return split;
  }
  const { td, rest } = split.value;
  if (rest === null) return { ok: true, value: { text, trustDomain: td, segments: [] } };
  const segments: PatternSegment[] = [];
  for (let i = 0; i < rest.length; i++) {
    const seg = rest[i]!;
    if (seg === "" && i === rest.length - 1) return { ok: false, error: "SPIFFE ID must not end with a slash" };
    if (seg === "*") {
      segments.push({ kind: "star" });
    } else if (seg === "**") {
      if (i !== rest.length - 1) return { ok: false, error: '"**" is only allowed as the last path segment' };
      segments.push({ kind: "globstar" });
    } else {
      if (seg.includes("*")) return { ok: false, error: `wildcards must be a whole path segment ("*" or "**"), not part of "${seg}"` };
      const err = checkSegment(seg);
      if (err) return { ok: false, error: err };
      segments.push({ kind: "literal", value: seg });
    }
  }
  return { ok: true, value: { text, trustDomain: td, segments } };
}

/** Obviously-correct pattern match, used by the reference evaluator and by tests. */
export function patternMatches(pattern: SpiffePattern, id: SpiffeId): boolean {
  if (pattern.trustDomain !== id.trustDomain) return false;
  const ps = pattern.segments;
  const ids = id.segments;
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    if (p.kind === "globstar") return ids.length - i >= 1;
    if (i >= ids.length) return false;
    if (p.kind === "literal" && p.value !== ids[i]) return false;
  }
  return ids.length === ps.length;
}

/**
 * The seed's layout `spiffe://<trust-domain>/<cluster>/<namespace>/<service-account>`,
 * split out for the dependency graph and the NetworkPolicy mirror. Null when the ID has
 * another shape.
 */
export function workloadParts(id: SpiffeId): { cluster: string; namespace: string; serviceAccount: string } | null {
  if (id.segments.length !== 3) return null;
  const [cluster, namespace, serviceAccount] = id.segments as [string, string, string];
  return { cluster, namespace, serviceAccount };
}
