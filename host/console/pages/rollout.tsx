// Rollout: what observe mode would have refused, grouped by flow (source, destination, port),
// from the same aggregation as the service graph (host/audit/graph.ts, `observed_deny`); the
// shared rollout settings and the admin's form to change them (as GET/PUT /v1/rollout); links to
// "suggest a rule" and "replay a candidate" (rollout-tools.tsx).
import type { Context, Hono } from "hono";
import { buildGraph, type GraphEdge } from "../../audit/graph.js";
import { requireAdmin } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { parseWindow, type TimeWindow } from "../time-window.js";
import { WindowField } from "../views/fields.js";
import { FlowTable } from "../views/flows.js";
import { page, type PageStatus } from "../views/layout.js";
import { Busy, EmptyState, Notice } from "../views/parts.js";
import { formOf, readSettingsForm, RolloutSettingsView, type SettingsForm } from "../views/rollout-settings.js";

function observedUrl(e: GraphEdge, w: TimeWindow): string {
  return consoleUrl("/audit", {
    source: e.source,
    destination: e.destination,
    port: e.port,
    decision: "DENY",
    enforced: "false",
    since: w.since.toISOString(),
    until: w.until.toISOString(),
  });
}

async function render(c: Context<ConsoleEnv>, deps: ConsoleDeps, refused: { form: SettingsForm; error: string; status: PageStatus } | null): Promise<Response> {
  const w = parseWindow({ window: c.req.query("window"), since: c.req.query("since"), until: c.req.query("until") }, "7d");
  if (!w.ok) return page(c, deps, { title: "Rollout", active: "rollout", status: 400 }, <Notice kind="error">{w.error}</Notice>);
  let flows: GraphEdge[] | { error: string };
  try {
    const g = await buildGraph(deps.audit.query, { since: w.value.since, until: w.value.until, format: "json" });
    flows = g.edges.filter((e) => e.observed_deny > 0).sort((a, b) => b.observed_deny - a.observed_deny);
  } catch (e) {
    flows = { error: (e as Error).message };
  }
  const view = deps.core.state.rollout;
  const session = c.get("session");
  const csrf = session?.role === "admin" ? deps.keys.csrfToken(session) : null;
  return page(
    c,
    deps,
    { title: "Rollout", active: "rollout", status: refused?.status ?? ("error" in flows ? 503 : 200) },
    <>
      <h1>Rollout</h1>
      <p class="lead">
        In observe mode the engine decides and records, but does not refuse. These flows would be refused if their destination were enforced
        today.
      </p>
      <p class="actions">
        <a class="button secondary" href={consoleUrl("/rollout/suggest")}>
          Suggest a rule from observed traffic
        </a>
        <a class="button secondary" href={consoleUrl("/rollout/replay")}>
          Replay a candidate over the trail
        </a>
      </p>
      <h2>Would-be denials</h2>
      <form class="filters" method="get" action={consoleUrl("/rollout")} data-busy>
        <WindowField id="r-window" preset={w.value.preset} />
        <button type="submit">Show</button>
        <Busy />
      </form>
      {"error" in flows ? (
        <Notice kind="error">The audit trail cannot be read: {flows.error}</Notice>
      ) : flows.length === 0 ? (
        <EmptyState title="Nothing would be denied">
          <p>
            No decision in this window was a denial that observe mode let through. Either every observed flow is allowed by the policies, or no
            destination is in observe mode (global mode <code>{view.global()}</code>; the settings below and the policies'{" "}
            <code>spec.rollout</code> entries on the <a href={consoleUrl("/")}>overview</a> say which are).
          </p>
        </EmptyState>
      ) : (
        <FlowTable flows={flows} caption="Would-be denials by flow, most first" testid="observed-denials" href={(e) => observedUrl(e, w.value)} label="observed denials" />
      )}
      <RolloutSettingsView
        settings={view.current()}
        effective={view.global()}
        envMode={deps.core.mode}
        assignments={view.canaryAssignments()}
        live={view.liveReplicas()}
        csrf={csrf}
        form={refused?.form ?? formOf(view.current())}
        error={refused?.error ?? null}
        saved={c.req.query("done") === "saved"}
      />
    </>,
  );
}

export function rolloutRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/rollout", (c) => render(c, deps, null));

  app.post("/rollout/settings", requireAdmin(), async (c) => {
    const read = readSettingsForm(await c.req.parseBody({ all: true }));
    if ("error" in read) return render(c, deps, { form: read.form, error: read.error, status: 400 });
    const r = await deps.core.state.putRollout(read.input, read.form.revision, c.get("caller"), read.form.message === "" ? null : read.form.message);
    if (!r.ok) {
      // 412: someone changed them meanwhile; the form shows what is saved now.
      if (r.code === "rollout_changed") return render(c, deps, { form: formOf(r.settings), error: `${r.message}: the form now shows them; make the change again.`, status: 412 });
      return render(c, deps, { form: read.form, error: r.message, status: r.status === 503 ? 503 : 400 });
    }
    deps.core.log.info("rollout settings written", { revision: r.settings.rev, mode: r.settings.mode, destinations: r.settings.destinations.length, canary: r.settings.canary, caller: c.get("caller"), request_id: c.get("requestId") });
    return c.redirect(consoleUrl("/rollout", { done: "saved" }), 303);
  });
}
