// Object names. Every name is a valid object name (an RFC 1123 subdomain, as the API server
// requires of metadata.name), and none can collide: the prefix `zt-` is the generator's own
// (zt-default-deny, zt-infra-*, and the hashed names below), so a subject whose plain name
// would start with it is hashed too.
import { createHash } from "node:crypto";
import { type Dim, dimKey } from "./dims.js";

/** Names the generator reserves: no plain `<service-account>-<direction>` name starts with it. */
export const RESERVED_PREFIX = "zt-";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// An RFC 1123 subdomain: dot-separated labels, 253 characters at most (Kubernetes' IsDNS1123Subdomain).
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

function hashOf(direction: string, sa: Dim, length: number): string {
  return createHash("sha256").update(`${direction}|${dimKey(sa)}`).digest("hex").slice(0, length);
}

/**
 * `<sa>-ingress` / `<sa>-egress` for one service account whose name is a DNS label outside the
 * reserved prefix (the seed's `postgres-ingress`); otherwise `zt-<hash>-<direction>`, the hash
 * taken over the subject (stable across runs). `long` asks for the whole hash: what the
 * generator uses for the few subjects whose short hashes meet in one namespace.
 */
export function subjectName(direction: "ingress" | "egress", sa: Dim, long = false): string {
  if (!long && sa.kind === "in" && sa.values.length === 1) {
    const v = sa.values[0]!;
    if (DNS_LABEL.test(v) && v.length <= 63 && !v.startsWith(RESERVED_PREFIX)) return `${v}-${direction}`;
  }
  return `${RESERVED_PREFIX}${hashOf(direction, sa, long ? 64 : 10)}-${direction}`;
}

/** The object for an infrastructure entry's ingress (e.g. the ZT engine's port), by the entry's name. */
export function infraIngressName(entry: string): string {
  const safe = entry.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "entry";
  return `${RESERVED_PREFIX}infra-ingress-${safe}`.slice(0, 253).replace(/-+$/, "");
}
