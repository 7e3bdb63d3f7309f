// Incidents: the ones `requireIncident` accepts now and the recently expired, declaring and
// closing them (admin), and the operator decisions that referenced each.
import type { Context, Hono } from "hono";
import { INCIDENT_ID, type Incident } from "../../engine/incidents.js";
import { requireAdmin } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { CsrfField, page } from "../views/layout.js";
import { EmptyState, HeadRow, Notice, Time } from "../views/parts.js";

const TTLS: ReadonlyArray<[string, string, number | null]> = [
  ["", "no expiry", null],
  ["3600", "1 hour", 3600],
  ["14400", "4 hours", 14400],
  ["86400", "24 hours", 86400],
  ["604800", "7 days", 604800],
];

const NOTICES: Record<string, string> = { opened: "Incident declared", updated: "Incident updated", closed: "Incident closed" };

function IncidentTable(props: { list: Incident[]; csrf: string | null; active: boolean }) {
  return (
    <table data-testid={props.active ? "incidents-active" : "incidents-expired"}>
      <HeadRow cols={["Id", "Description", "Opened", "By", "Expires", "Decisions", ...(props.csrf !== null ? ["Close"] : [])]} />
      <tbody>
        {props.list.map((i) => (
          <tr>
            <td>
              <code>{i.id}</code>
            </td>
            <td>{i.description ?? <span class="muted">none</span>}</td>
            <td>
              <Time iso={i.created_at} />
            </td>
            <td>{i.created_by ?? <span class="muted">unknown</span>}</td>
            <td>{i.expires_at === null ? <span class="muted">no expiry</span> : <Time iso={i.expires_at} />}</td>
            <td>
              <a href={consoleUrl("/audit", { incident: i.id })} aria-label={`decisions that referenced ${i.id}`}>
                referencing decisions
              </a>
            </td>
            {props.csrf !== null && (
              <td>
                <form method="post" action={consoleUrl(`/incidents/${encodeURIComponent(i.id)}/close`)} class="inline">
                  <CsrfField token={props.csrf} />
                  <button type="submit" class="danger" aria-label={`close ${i.id}`}>
                    Close
                  </button>
                </form>
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function render(c: Context<ConsoleEnv>, deps: ConsoleDeps, error: { message: string; values: Record<string, string> } | null) {
  const session = c.get("session");
  const admin = session?.role === "admin";
  const csrf = admin && session !== null ? deps.keys.csrfToken(session) : null;
  const { active, expired } = deps.core.incidents.list();
  const done = c.req.query("done");
  const doneId = c.req.query("id");
  const values = error?.values ?? {};
  return page(
    c,
    deps,
    { title: "Incidents", active: "incidents", status: error === null ? 200 : 400 },
    <>
      <h1>Incidents</h1>
      <p class="lead">
        A rule with <code>requireIncident</code> allows an operator only while the incident they name is declared and not expired.
      </p>
      {done !== undefined && NOTICES[done] !== undefined && (
        <Notice kind="ok">
          {NOTICES[done]}: <code>{doneId}</code>
        </Notice>
      )}
      {error !== null && <Notice kind="error">{error.message}</Notice>}
      <h2>Active</h2>
      {active.length === 0 ? (
        <EmptyState title="No active incident">
          <p>Operator requests that require an incident are denied until one is declared{admin ? " below" : ""}.</p>
        </EmptyState>
      ) : (
        <IncidentTable list={active} csrf={csrf} active={true} />
      )}
      {csrf !== null && (
        <>
          <h2>Declare or update an incident</h2>
          <form method="post" action={consoleUrl("/incidents")} class="filters" data-busy>
            <CsrfField token={csrf} />
            <div class="field">
              <label for="inc-id">Id</label>
              <input id="inc-id" name="id" type="text" required pattern="[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}" placeholder="INC-7" value={values.id ?? ""} />
            </div>
            <div class="field wide">
              <label for="inc-desc">Description</label>
              <input id="inc-desc" name="description" type="text" maxlength={1024} placeholder="postgres failover" value={values.description ?? ""} />
            </div>
            <div class="field">
              <label for="inc-ttl">Expires after</label>
              <select id="inc-ttl" name="ttl">
                {TTLS.map(([v, label]) => (
                  <option value={v} selected={(values.ttl ?? "14400") === v}>
                    {label}
                  </option>
                ))}
              </select>
            </div>
            <button type="submit">Declare</button>
          </form>
        </>
      )}
      <h2>Expired in the last day</h2>
      {expired.length === 0 ? <p class="muted">None.</p> : <IncidentTable list={expired} csrf={null} active={false} />}
    </>,
  );
}

export function incidentsRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/incidents", (c) => render(c, deps, null));

  app.post("/incidents", requireAdmin(), async (c) => {
    const body = await c.req.parseBody();
    const values: Record<string, string> = {};
    for (const k of ["id", "description", "ttl"]) values[k] = typeof body[k] === "string" ? (body[k] as string).trim() : "";
    const id = values.id as string;
    if (!INCIDENT_ID.test(id)) {
      return render(c, deps, { message: "An incident id is 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.", values });
    }
    if ((values.description as string).length > 1024) return render(c, deps, { message: "The description is longer than 1024 characters.", values });
    const ttl = TTLS.find(([v]) => v === values.ttl);
    if (!ttl) return render(c, deps, { message: "Choose an expiry from the list.", values });
    const now = Date.now();
    const r = await deps.core.state.putIncident(
      id,
      { description: values.description === "" ? null : values.description, expires_at: ttl[2] === null ? null : new Date(now + ttl[2] * 1000).toISOString() },
      c.get("caller"),
    );
    if (!r.ok) return render(c, deps, { message: r.message, values });
    deps.core.log.info(r.created ? "incident declared" : "incident updated", { incident: id, expires_at: r.incident.expires_at, caller: c.get("caller"), request_id: c.get("requestId") });
    return c.redirect(consoleUrl("/incidents", { done: r.created ? "opened" : "updated", id }), 303);
  });

  app.post("/incidents/:id/close", requireAdmin(), async (c) => {
    const id = c.req.param("id");
    const r = await deps.core.state.closeIncident(id, c.get("caller"));
    if (!r.ok) return render(c, deps, { message: r.status === 404 ? `There is no incident "${id}" (closed already?).` : r.message, values: {} });
    deps.core.log.info("incident closed", { incident: id, caller: c.get("caller"), request_id: c.get("requestId") });
    return c.redirect(consoleUrl("/incidents", { done: "closed", id }), 303);
  });
}
