// The gate every request, WebSocket and tunnel passes: which route, who is asking
// (authenticate/), may they (authorize/), and otherwise the answer to give: a login challenge
// (302 for a browser, 401 JSON with the login URL for a script), a step-up to MFA, or a refusal
// page. The answer is plain data so that Hono responses and raw sockets (upgrade, CONNECT) can
// both write it. Every refusal and every decision is audited by authorize/.
import type { IncomingHttpHeaders } from "node:http";
import type { AccessRoute, HttpRoute, TcpRoute } from "../../compiler/access-route/model.js";
import { actionMatcher, type ActionMatcher } from "../../compiler/access-route/actions.js";
import { INCIDENT_ID } from "../engine/incidents.js";
import type { Decision } from "../engine/decide.js";
import type { Authenticator, CredentialSource } from "./authenticate/credential.js";
import type { Identity } from "./authenticate/identity.js";
import type { Session } from "./authenticate/sessions.js";
import { type Authorizer, lets, NO_ROUTE_SERVICE, type Via } from "./authorize/operator.js";
import { normalisePath } from "./forward/path.js";
import type { Outcome, ProxyMetrics } from "./metrics.js";
import { type Answer, isNavigation } from "./pages.js";
import { loginUrl } from "./paths.js";
import type { RequestInfo } from "./request-info.js";
import type { RouteTable } from "./route-table.js";

export const INCIDENT_HEADER = "x-zt-incident";
const MFA_REASON = "condition_failed:requireMFA";


export interface Admitted<R extends AccessRoute = AccessRoute> {
  readonly route: R;
  readonly identity: Identity;
  readonly mfa: boolean;
  readonly session: Session | null;
  readonly source: CredentialSource;
  readonly decision: Decision;
  /** HTTP only: the normalised path, its query, and where it goes upstream. */
  readonly path: string;
  readonly query: string;
}

export type GateResult<R extends AccessRoute = AccessRoute> = { readonly ok: true; readonly admitted: Admitted<R> } | { readonly ok: false; readonly answer: Answer };

export interface GateDeps {
  readonly routes: () => RouteTable;
  readonly auth: Authenticator;
  readonly authorizer: Authorizer;
  readonly metrics: ProxyMetrics;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export class Gate {
  private matchers = new WeakMap<HttpRoute, ActionMatcher>();

  constructor(private readonly deps: GateDeps) {}

  private matcher(route: HttpRoute): ActionMatcher {
    let m = this.matchers.get(route);
    if (m === undefined) {
      m = actionMatcher(route);
      this.matchers.set(route, m);
    }
    return m;
  }

  private refusal(route: string | null, service: string, action: string, via: Via, info: RequestInfo, status: number, reason: string, title: string, message: string, html: boolean, outcome: Outcome = "refused"): GateResult<never> {
    const d = this.deps.authorizer.refuse(null, { route, service, action }, reason, via, info.remote);
    this.deps.metrics.request(route, outcome);
    return { ok: false, answer: { html, page: { status, title, message, code: reason, decisionId: d.decision_id } } };
  }

  /** An HTTP request or WebSocket handshake for a route host. */
  async http(method: string, rawUrl: string, headers: IncomingHttpHeaders, info: RequestInfo, via: Via): Promise<GateResult<HttpRoute>> {
    const html = (headers.accept ?? "").includes("text/html");
    const p = normalisePath(rawUrl);
    if (!p.ok) return this.refusal(null, NO_ROUTE_SERVICE, method.toLowerCase(), via, info, 400, "proxy_bad_path", "Bad request", `Refused: ${p.message}.`, html);
    const route = this.deps.routes().httpRoute(info.host, p.path);
    if (route === null) {
      return this.refusal(null, NO_ROUTE_SERVICE, method.toLowerCase(), via, info, 404, "proxy_unknown_host", "No such route", `The access proxy has no route for ${info.host}${p.path === "/" ? "" : " at this path"}.`, html);
    }
    if (via === "websocket" && !route.websockets) return this.refusal(route.name, route.service, "read", via, info, 403, "proxy_websockets_disabled", "WebSockets are off", "This route does not carry WebSockets.", html);
    const action = this.matcher(route).action(method, p.segments);
    const returnTo = p.path + p.query;
    const r = await this.identify(route, action, headers, info, via, html, method, returnTo);
    if (!r.ok) return r;
    return { ok: true, admitted: { ...r.admitted, route, path: p.path, query: p.query } };
  }

  /** A tunnel (CONNECT host:port) to a TCP route. */
  async tunnel(host: string, port: number, headers: IncomingHttpHeaders, info: RequestInfo): Promise<GateResult<TcpRoute>> {
    const route = this.deps.routes().tcpRoute(host, port);
    if (route === null) return this.refusal(null, NO_ROUTE_SERVICE, "connect", "tunnel", info, 404, "proxy_unknown_host", "No such route", `The access proxy has no tunnel route for ${host}:${port}.`, false);
    const r = await this.identify(route, route.action, headers, info, "tunnel", false, "CONNECT", "/");
    if (!r.ok) return r;
    return { ok: true, admitted: { ...r.admitted, route, path: "/", query: "" } };
  }

  private async identify<R extends AccessRoute>(route: R, action: string, headers: IncomingHttpHeaders, info: RequestInfo, via: Via, html: boolean, method: string, returnTo: string): Promise<GateResult<R>> {
    const { metrics } = this.deps;
    const cred = await this.deps.auth.authenticate(
      { cookie: first(headers.cookie), authorization: first(headers.authorization), proxyAuthorization: first(headers["proxy-authorization"]) },
      info.host,
    );
    if (cred.kind === "unavailable") {
      metrics.request(route.name, "unavailable");
      return { ok: false, answer: { html, page: { status: 503, title: "Sign-in unavailable", message: cred.message, code: "issuer_unavailable", headers: { "retry-after": "5" } } } };
    }
    if (cred.kind === "invalid") {
      return this.refusal(route.name, route.service, action, via, info, 401, cred.reason, "Not signed in", cred.message, html);
    }
    if (cred.kind === "none") {
      metrics.request(route.name, "login_required");
      const login = loginUrl(returnTo);
      if (via === "http" && isNavigation(method, headers)) return { ok: false, answer: { html: true, redirect: login } };
      return { ok: false, answer: { html, page: { status: 401, title: "Sign in required", message: "Sign in to the access proxy first.", code: "login_required", loginUrl: login, headers: { "www-authenticate": 'Bearer realm="zt-proxy"' } } } };
    }
    const identity = cred.identity;
    const mfa = this.deps.auth.mfa(identity);
    const session = cred.kind === "session" ? cred.session : null;
    const rawIncident = first(headers[INCIDENT_HEADER]);
    if (rawIncident !== undefined && !INCIDENT_ID.test(rawIncident)) {
      return this.refusal(route.name, route.service, action, via, info, 400, "proxy_bad_incident", "Bad incident", `The ${INCIDENT_HEADER} header is not an incident id.`, html);
    }
    const incident = rawIncident ?? session?.incident ?? null;
    const decision = await this.deps.authorizer.decide({ subject: identity.subject, roles: identity.roles, mfa }, { route: route.name, service: route.service, action }, incident, via, info.remote);
    if (lets(decision)) {
      return { ok: true, admitted: { route, identity, mfa, session, source: cred.source, decision, path: "/", query: "" } };
    }
    // MFA would change the answer: send the operator back to the issuer, not a bare 403.
    if (decision.reason === MFA_REASON && !mfa) {
      metrics.request(route.name, "step_up");
      const login = loginUrl(returnTo, true);
      if (via === "http" && isNavigation(method, headers)) return { ok: false, answer: { html: true, redirect: login } };
      return {
        ok: false,
        answer: { html, page: { status: 401, title: "A second factor is required", message: "This needs multi-factor authentication: sign in again with a second factor.", code: "mfa_required", loginUrl: login, decisionId: decision.decision_id, headers: { "www-authenticate": 'Bearer realm="zt-proxy", error="insufficient_user_authentication", acr_values="mfa"' } } },
      };
    }
    metrics.request(route.name, decision.reason === "audit_unavailable" ? "unavailable" : "denied");
    const status = decision.reason === "audit_unavailable" ? 503 : 403;
    return {
      ok: false,
      answer: { html, page: { status, title: "Access denied", message: `${identity.subject} may not ${action} ${route.service} (${decision.reason}).`, code: decision.reason, decisionId: decision.decision_id } },
    };
  }
}
