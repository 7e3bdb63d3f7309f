// Graph: the service dependency graph of /v1/graph (host/audit/graph.ts, the same query and
// the same DOT), drawn in the browser by Graphviz (@viz-js/viz); each edge links to its
// decisions in the audit browser. The edge table below it is the same data without script.
import type { Context, Hono } from "hono";
import { buildGraph, type Graph, graphToDot } from "../../audit/graph.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { parseWindow, type TimeWindow } from "../time-window.js";
import { SelectField, WindowField } from "../views/fields.js";
import { FlowTable } from "../views/flows.js";
import { page } from "../views/layout.js";
import { Busy, EmptyState, Notice, Time } from "../views/parts.js";

interface GraphView {
  window: TimeWindow;
  namespace: string;
}

function viewOf(c: Context<ConsoleEnv>): { ok: true; value: GraphView } | { ok: false; error: string } {
  const w = parseWindow({ window: c.req.query("window"), since: c.req.query("since"), until: c.req.query("until") }, "24h");
  if (!w.ok) return w;
  return { ok: true, value: { window: w.value, namespace: (c.req.query("namespace") ?? "").trim() } };
}

/** The part of the graph that touches `namespace` (either end); the whole graph for "". */
export function filterNamespace(g: Graph, namespace: string): Graph {
  if (namespace === "") return g;
  const ns = new Map(g.nodes.map((n) => [n.id, n.namespace]));
  const edges = g.edges.filter((e) => ns.get(e.source) === namespace || ns.get(e.destination) === namespace);
  const keep = new Set(edges.flatMap((e) => [e.source, e.destination]));
  return { ...g, nodes: g.nodes.filter((n) => keep.has(n.id)), edges };
}

function windowParams(w: TimeWindow): Record<string, string> {
  return w.preset !== "" ? { window: w.preset } : { since: w.since.toISOString(), until: w.until.toISOString() };
}

/** The audit browser showing an edge's decisions in the graph's window. */
export function edgeAuditUrl(e: { source: string; destination: string; port: number }, w: TimeWindow): string {
  return consoleUrl("/audit", { source: e.source, destination: e.destination, port: e.port, since: w.since.toISOString(), until: w.until.toISOString() });
}

function Filters(props: { view: GraphView; namespaces: string[] }) {
  const { view } = props;
  return (
    <form class="filters" method="get" action={consoleUrl("/graph")} data-busy>
      <WindowField id="g-window" preset={view.window.preset} />
      <SelectField id="g-ns" name="namespace" label="Namespace" options={[["", "all namespaces"], ...props.namespaces.map((n) => [n, n] as const)]} selected={view.namespace} />
      <button type="submit">Show</button>
      <Busy />
    </form>
  );
}

export function graphRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/graph", async (c) => {
    const v = viewOf(c);
    if (!v.ok) {
      return page(c, deps, { title: "Graph", active: "graph", status: 400 }, <Notice kind="error">{v.error}</Notice>);
    }
    const view = v.value;
    let whole: Graph;
    try {
      whole = await buildGraph(deps.audit.query, { since: view.window.since, until: view.window.until, format: "json" });
    } catch (e) {
      return page(c, deps, { title: "Graph", active: "graph", status: 503 }, <Notice kind="error">The audit trail cannot be read: {(e as Error).message}</Notice>);
    }
    const namespaces = [...new Set(whole.nodes.map((n) => n.namespace).filter((n): n is string => n !== null))].sort();
    const g = filterNamespace(whole, view.namespace);
    const dotUrl = consoleUrl("/graph.dot", { ...windowParams(view.window), namespace: view.namespace });
    return page(
      c,
      deps,
      { title: "Graph", active: "graph", scripts: ["graph.js"] },
      <>
        <h1>Service graph</h1>
        <p class="lead">
          Who called whom, as the audit trail recorded it from <Time iso={g.since} /> to <Time iso={g.until} />. Select an edge to see its
          decisions.
        </p>
        <Filters view={view} namespaces={namespaces} />
        {g.edges.length === 0 ? (
          <EmptyState title="No service traffic in this window">
            <p>
              The graph is drawn from service-to-service decisions in the audit trail. A new install has none yet: once sidecars or services
              ask <code>POST /v1/evaluate</code> (in observe mode too), each caller–callee pair appears here with its allows and denies.
            </p>
            <p>
              {view.namespace !== "" ? "Try all namespaces, or a longer window." : "Try a longer window."} Operator requests are not service
              dependencies: find them in the <a href={consoleUrl("/audit")}>audit browser</a>.
            </p>
          </EmptyState>
        ) : (
          <>
            <div class="legend" aria-hidden="true">
              <span>
                <span class="sw"></span>allowed only
              </span>
              <span>
                <span class="sw deny"></span>denied (enforced)
              </span>
              <span>
                <span class="sw observe"></span>would be denied (observe mode)
              </span>
            </div>
            <figure>
              <div id="graph" class="graph-box" data-dot={dotUrl} data-viz={deps.assets.url("viz.js")} role="region" aria-label="Service graph drawing" aria-busy="true">
                <p class="busy-indicator on" data-graph-status>
                  <span class="spinner"></span>Drawing the graph…
                </p>
                <noscript>
                  <p>The drawing needs JavaScript; the table below holds the same edges.</p>
                </noscript>
              </div>
              <figcaption class="muted">
                {g.nodes.length} services, {g.edges.length} edges
              </figcaption>
            </figure>
            <h2>Edges</h2>
            <FlowTable flows={g.edges} caption="Every caller–callee pair of the window" testid="graph-edges" href={(e) => edgeAuditUrl(e, view.window)} label="decisions" />
          </>
        )}
      </>,
    );
  });

  // The DOT the page's script renders: GET /v1/graph?format=dot's, plus a link on every edge.
  app.get("/graph.dot", async (c) => {
    const v = viewOf(c);
    if (!v.ok) return c.json({ error: { code: "invalid_request", message: v.error } }, 400);
    const w = v.value.window;
    const g = filterNamespace(await buildGraph(deps.audit.query, { since: w.since, until: w.until, format: "dot" }), v.value.namespace);
    return c.body(graphToDot(g, { edgeHref: (e) => edgeAuditUrl(e, w) }), 200, { "content-type": "text/vnd.graphviz; charset=utf-8" });
  });
}
