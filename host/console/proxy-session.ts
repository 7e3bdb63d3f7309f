// Sign-in through the operator access proxy (docs/proxy.md): the console is then an upstream of
// an AccessRoute, as any web console behind IAP is. The proxy signs the operator in at the
// identity provider, decides the request with the operator policies, and forwards it with
// X-Zt-Jwt-Assertion (ES256, iss zt-access-proxy, aud the route's upstream host, <= 10 min).
// The console verifies it with the proxy's own keys (in memory: the proxy runs in this
// process) and makes it the request's session: the role zt-admin may change things, any other
// operator reads. No cookie of the console's is involved; the proxy's session is the session.
import { createLocalJWKSet, errors, jwtVerify } from "jose";
import type { AssertionKeys } from "../proxy/index.js";
import type { Session } from "./session.js";

/** The role that may write through the console. */
export const ADMIN_ROLE = "zt-admin";

export interface ProxySignIn {
  readonly keys: AssertionKeys;
  /** The host name of the AccessRoute's upstream (`to:`) that leads to this engine: the assertion's `aud`. */
  readonly audience: string;
}

export type AssertionOutcome = { ok: true; session: Session } | { ok: false; reason: string };

/**
 * The session an assertion stands for. `sid` is derived from the subject (by `sidOf`, a MAC with
 * the console's key) so that the CSRF token bound to it stays the same across requests.
 */
export async function sessionFromAssertion(p: ProxySignIn, token: string, sidOf: (sub: string) => string): Promise<AssertionOutcome> {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(await p.keys.jwks()), { issuer: p.keys.issuer, audience: p.audience, algorithms: ["ES256"] });
    const sub = typeof payload.sub === "string" ? payload.sub : null;
    if (sub === null || typeof payload.exp !== "number") return { ok: false, reason: "the assertion names no subject or expiry" };
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === "string") : [];
    const who = typeof payload.email === "string" && payload.email !== "" ? payload.email : sub;
    return { ok: true, session: { sid: sidOf(sub), sub: who, role: roles.includes(ADMIN_ROLE) ? "admin" : "reader", exp: payload.exp, via: "proxy" } };
  } catch (e) {
    const reason = e instanceof errors.JOSEError ? e.code : "unreadable";
    return { ok: false, reason: `the access proxy's assertion is not valid here (${reason})` };
  }
}
