// Rollout: what observe mode would have refused, grouped by flow (source, destination, port),
// from the same aggregation as the service graph (host/audit/graph.ts, `observed_deny`).
import type { Hono } from "hono";
import { buildGraph, type GraphEdge } from "../../audit/graph.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { parseWindow, type TimeWindow } from "../time-window.js";
import { WindowField } from "../views/fields.js";
import { FlowTable } from "../views/flows.js";
import { page } from "../views/layout.js";
import { Busy, EmptyState, Notice } from "../views/parts.js";

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

export function rolloutRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/rollout", async (c) => {
    const w = parseWindow({ window: c.req.query("window"), since: c.req.query("since"), until: c.req.query("until") }, "7d");
    if (!w.ok) return page(c, deps, { title: "Rollout", active: "rollout", status: 400 }, <Notice kind="error">{w.error}</Notice>);
    let flows: GraphEdge[];
    try {
      const g = await buildGraph(deps.audit.query, { since: w.value.since, until: w.value.until, format: "json" });
      flows = g.edges.filter((e) => e.observed_deny > 0).sort((a, b) => b.observed_deny - a.observed_deny);
    } catch (e) {
      return page(c, deps, { title: "Rollout", active: "rollout", status: 503 }, <Notice kind="error">The audit trail cannot be read: {(e as Error).message}</Notice>);
    }
    return page(
      c,
      deps,
      { title: "Rollout", active: "rollout" },
      <>
        <h1>Rollout</h1>
        <p class="lead">
          In observe mode the engine decides and records, but does not refuse. These flows would be refused if their destination were enforced
          today.
        </p>
        <form class="filters" method="get" action={consoleUrl("/rollout")} data-busy>
          <WindowField id="r-window" preset={w.value.preset} />
          <button type="submit">Show</button>
          <Busy />
        </form>
        {flows.length === 0 ? (
          <EmptyState title="Nothing would be denied">
            <p>
              No decision in this window was a denial that observe mode let through. Either every observed flow is allowed by the policies, or
              no destination is in observe mode (global mode <code>{deps.core.mode}</code>; per-destination <code>spec.rollout</code> entries are
              listed on the <a href={consoleUrl("/")}>overview</a>).
            </p>
          </EmptyState>
        ) : (
          <FlowTable
            flows={flows}
            caption="Would-be denials by flow, most first"
            testid="observed-denials"
            href={(e) => observedUrl(e, w.value)}
            label="observed denials"
          />
        )}
      </>,
    );
  });
}
