// authorize/: what the operator may do. Every proxied request and every tunnel is one operator
// request decided by the engine's decision core (engine/decide.ts, the path POST /v1/evaluate
// takes) and audited there with the operator's subject and roles, the route's service and action,
// and the route in `caller`. Refusals before a decision (no valid credential, unknown host) are
// audited through the same core. Nothing here knows about cookies or tokens: it gets an identity.
import { type Decision, decideOperator, type OperatorDecideDeps, refuseOperator } from "../../engine/decide.js";
import type { OperatorItem } from "../../engine/evaluate-input.js";
import { LIMITS } from "../../engine/evaluate-input.js";
import { unstorableText } from "../../audit/storable-text.js";

/** Who is asking, as authentication established it (see authenticate/identity.ts). */
export interface Operator {
  readonly subject: string;
  readonly roles: readonly string[];
  /** MFA that counts now (an accepted `amr`, recent enough). */
  readonly mfa: boolean;
}

/** Where the request goes: the route's name and service, and the action it asks for. */
export interface Target {
  readonly route: string | null;
  readonly service: string;
  readonly action: string;
}

export type Via = "http" | "websocket" | "tunnel";

/** Service recorded for requests that matched no route (unknown host or path). */
export const NO_ROUTE_SERVICE = "(no-route)";

/**
 * `caller` of the audit record: the proxy, the route, how the request came and the client's
 * address, e.g. "proxy:grafana+http+remote:10.0.0.7". The route and address are what an
 * investigator needs and the record has no other field for them.
 */
export function proxyCaller(route: string | null, via: Via, remote: string | null): string {
  return `proxy:${route ?? NO_ROUTE_SERVICE}+${via}${remote ? `+remote:${remote}` : ""}`;
}

/** Text the audit trail can hold, bounded: client-chosen values (hosts, incident ids) pass through here. */
function storable(s: string, max: number): string {
  const t = s.length > max ? s.slice(0, max) : s;
  return unstorableText(t) === null ? t : "(unstorable)";
}

function operatorItem(who: Operator | null, target: Target, incident: string | null, remote: string | null): OperatorItem {
  return {
    kind: "operator",
    operator: {
      // Refusals have no verified subject: the record says so, with the client's address.
      subject: who ? storable(who.subject, LIMITS.subject) : `anonymous${remote ? `@${remote}` : ""}`,
      roles: who ? who.roles.slice(0, LIMITS.roles).map((r) => storable(r, LIMITS.role)) : [],
      mfa: who?.mfa ?? false,
      incident: incident === null ? null : storable(incident, LIMITS.incident),
    },
    target: { service: storable(target.service, LIMITS.name), action: storable(target.action, LIMITS.name) },
  };
}

export interface Authorizer {
  /** The engine's decision for `who` on `target`, audited. */
  decide(who: Operator, target: Target, incident: string | null, via: Via, remote: string | null): Promise<Decision>;
  /** A request refused before any decision (reason e.g. "proxy_invalid_token:token_expired"), audited. */
  refuse(who: Operator | null, target: Target, reason: string, via: Via, remote: string | null): Decision;
}

export function createAuthorizer(deps: OperatorDecideDeps): Authorizer {
  return {
    decide: (who, target, incident, via, remote) =>
      decideOperator(deps, operatorItem(who, target, incident, remote), proxyCaller(target.route, via, remote), { route: target.route }),
    refuse: (who, target, reason, via, remote) => refuseOperator(deps, operatorItem(who, target, null, remote), storable(reason, 256), proxyCaller(target.route, via, remote)),
  };
}

/** True when the decision lets the request through: ALLOW, or any decision in observe mode. */
export function lets(d: Decision): boolean {
  return d.decision === "ALLOW" || !d.enforced;
}
