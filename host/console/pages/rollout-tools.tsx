// The rollout tools of host/rollout in the browser, admin only as their API routes are:
// "suggest a rule" (zt suggest, GET /v1/suggest: the smallest ServiceAccessPolicy allowing the
// observed flows of a window) and "replay a candidate" (zt replay, POST /v1/replay: the trail's
// decisions of a window decided again by a candidate). Both read the trail on a connection of
// their own (trail.ts), one run of each at a time on this replica.
import type { Context, Hono } from "hono";
import type { Child } from "hono/jsx";
import type { Sql } from "postgres";
import { type OperatorFlowChange, replay, type ReplayReport, type ServiceFlowChange } from "../../rollout/replay.js";
import { buildSuggestion, parseSuggestOptions, type Suggestion, observedFlows } from "../../rollout/suggest.js";
import { NoRecordsError, openTrailConnection } from "../../rollout/trail.js";
import { parseWindow } from "../../rollout/window.js";
import { requireAdmin } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { Diagnostics } from "../views/documents.js";
import { CsrfField, page, type PageStatus } from "../views/layout.js";
import { Busy, EmptyState, HeadRow, KeyValues, Notice, Time, Version } from "../views/parts.js";
import { YamlView } from "../views/yaml.js";

type Trail = <T>(what: "replay" | "suggest", read: (sql: Sql) => Promise<T>) => Promise<T | { error: string; status: PageStatus }>;

/** One read of each kind at a time, each on its own connection; an empty window or an unreadable trail is said, not thrown. */
function trailReader(deps: ConsoleDeps): Trail {
  const busy = new Set<string>();
  return async (what, read) => {
    if (deps.trailDsn === null) return { error: `${what} needs the PostgreSQL audit trail (ZT_AUDIT_DSN or the embedded one)`, status: 503 };
    if (busy.has(what)) return { error: `another ${what} is running on this replica; try again when it has finished`, status: 429 };
    busy.add(what);
    const sql = openTrailConnection(deps.trailDsn, `zt-console-${what}`);
    try {
      return await read(sql);
    } catch (e) {
      if (e instanceof NoRecordsError) return { error: `${e.message}: choose another window`, status: 400 };
      deps.core.log.warn(`console ${what} failed`, { err: e });
      return { error: `the audit trail could not be read: ${(e as Error).message}`, status: 503 };
    } finally {
      busy.delete(what);
      await sql.end({ timeout: 5 });
    }
  };
}

interface WindowValues {
  since: string;
  until: string;
  destination: string;
}

function windowValues(get: (k: string) => string | undefined): WindowValues {
  return { since: (get("since") ?? "24h").trim() || "24h", until: (get("until") ?? "").trim(), destination: (get("destination") ?? "").trim() };
}

function checkWindow(v: WindowValues) {
  return parseWindow({ since: v.since, ...(v.until !== "" ? { until: v.until } : {}), ...(v.destination !== "" ? { destination: v.destination } : {}) }, { since: "Since", until: "Until", destination: "Destination" });
}

function WindowFields(props: { prefix: string; v: WindowValues }) {
  const { prefix, v } = props;
  return (
    <>
      <div class="field">
        <label for={`${prefix}-since`}>Since</label>
        <input id={`${prefix}-since`} name="since" type="text" value={v.since} placeholder="24h, 7d or 2026-01-01T00:00:00Z" />
      </div>
      <div class="field">
        <label for={`${prefix}-until`}>Until</label>
        <input id={`${prefix}-until`} name="until" type="text" value={v.until} placeholder="now" />
      </div>
      <div class="field wide">
        <label for={`${prefix}-dest`}>Destination</label>
        <input id={`${prefix}-dest`} name="destination" type="text" value={v.destination} placeholder="every destination, or a SPIFFE pattern" />
      </div>
    </>
  );
}

function needsAdmin(c: Context<ConsoleEnv>, deps: ConsoleDeps, title: string, what: string): Response | Promise<Response> {
  return page(c, deps, { title, active: "rollout", status: 403 }, <Notice kind="info">{what} needs the zt-admin role, as its API route does.</Notice>);
}

// ---- suggest ----

function SuggestView(props: { s: Suggestion; records: number }) {
  const { s } = props;
  return (
    <section aria-labelledby="suggest-title" data-testid="suggestion">
      <h2 id="suggest-title">Suggested policy</h2>
      <KeyValues
        rows={[
          ["Records read", String(props.records)],
          ["Flows", String(s.flows)],
          ["Rules", String(s.rules)],
        ]}
      />
      {s.denied_by_rule.length > 0 && (
        <Notice kind="warn">
          {s.denied_by_rule.length} observed flow{s.denied_by_rule.length === 1 ? " was" : "s were"} refused by an explicit DENY rule: an ALLOW beside it
          would not let {s.denied_by_rule.length === 1 ? "it" : "them"} through.
        </Notice>
      )}
      <YamlView source={s.yaml} label="The suggested policy" />
    </section>
  );
}

// ---- replay ----

type Column<T> = readonly [string | readonly [string, "num"], (f: T) => Child];

/** One direction of changed flows; empty: nothing. */
function ChangeTable<T>(props: { list: readonly T[]; testid: string; title: string; cols: ReadonlyArray<Column<T>> }) {
  if (props.list.length === 0) return null;
  return (
    <table data-testid={props.testid}>
      <caption>{props.title}</caption>
      <HeadRow cols={props.cols.map((c) => c[0])} />
      <tbody>
        {props.list.map((f) => (
          <tr>
            {props.cols.map(([h, cell]) => (
              <td class={typeof h === "string" ? undefined : "num"}>{cell(f)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const spiffe = (id: string) => (
  <span class="wrap">
    <code>{id}</code>
  </span>
);
const candidateCol = <T extends { candidate: { rule: string | null; reason: string } }>(): Column<T> => ["Candidate", (f) => <code>{f.candidate.rule ?? f.candidate.reason}</code>];

const SERVICE_COLS: ReadonlyArray<Column<ServiceFlowChange>> = [
  ["Source", (f) => spiffe(f.source)],
  ["Destination", (f) => spiffe(f.destination)],
  [["Port", "num"], (f) => f.port],
  [["Decisions", "num"], (f) => f.count],
  ["First seen", (f) => <Time iso={f.first_seen} />],
  ["Last seen", (f) => <Time iso={f.last_seen} />],
  candidateCol<ServiceFlowChange>(),
  [
    "Samples",
    (f) =>
      f.sample_decision_ids.map((id, i) => (
        <a href={consoleUrl(`/audit/record/${id}`)} aria-label={`sample decision ${i + 1} from ${f.source} to ${f.destination}`}>
          {`#${i + 1} `}
        </a>
      )),
  ],
];

const OPERATOR_COLS: ReadonlyArray<Column<OperatorFlowChange>> = [
  ["Roles", (f) => f.roles.join(", ")],
  ["Service", (f) => f.service],
  ["Action", (f) => f.action],
  ["MFA", (f) => (f.mfa ? "yes" : "no")],
  ["Incident", (f) => (f.incident_active ? "active" : "no")],
  [["Decisions", "num"], (f) => f.count],
  ["Last seen", (f) => <Time iso={f.last_seen} />],
  candidateCol<OperatorFlowChange>(),
];

function ReplayView(props: { r: ReplayReport }) {
  const { r } = props;
  const none = r.records.changed === 0;
  return (
    <section aria-labelledby="replay-title" data-testid="replay-report">
      <h2 id="replay-title">
        Replayed with <Version v={r.candidate_version} />
      </h2>
      <KeyValues
        rows={[
          ["Window", <><Time iso={r.window.since} /> to <Time iso={r.window.until} />{r.window.destination !== null && <> for <code>{r.window.destination}</code></>}</>],
          ["Records read", String(r.records.read)],
          ["Replayed", String(r.records.replayed)],
          ["Decided differently", <span data-testid="replay-changed">{r.records.changed}</span>],
          ["Not replayable", `${r.records.skipped.agent} agent decisions (the token is not in the trail), ${r.records.skipped.engine_failure} engine failures`],
          ["Took", `${r.duration_ms} ms (${Math.round(r.records_per_s)} records/s)`],
        ]}
      />
      {none ? (
        <Notice kind="ok">The candidate decides every replayed request of this window as it was decided.</Notice>
      ) : (
        <>
          <ChangeTable list={r.service.allow_to_deny} testid="replay-service-allow_to_deny" cols={SERVICE_COLS} title="Service requests allowed then, denied by the candidate" />
          <ChangeTable list={r.service.deny_to_allow} testid="replay-service-deny_to_allow" cols={SERVICE_COLS} title="Service requests denied then, allowed by the candidate" />
          <ChangeTable list={r.operator.allow_to_deny} testid="replay-operator-allow_to_deny" cols={OPERATOR_COLS} title="Operator requests allowed then, denied by the candidate" />
          <ChangeTable list={r.operator.deny_to_allow} testid="replay-operator-deny_to_allow" cols={OPERATOR_COLS} title="Operator requests denied then, allowed by the candidate" />
          {r.flows_not_kept > 0 && <Notice kind="warn">{r.flows_not_kept} more changed flows are counted but not listed.</Notice>}
        </>
      )}
    </section>
  );
}

function ReplayForm(props: { csrf: string; text: string; v: WindowValues; replace: boolean }) {
  return (
    <form method="post" action={consoleUrl("/rollout/replay")} data-busy>
      <CsrfField token={props.csrf} />
      <p>
        <label for="replay-candidate">Candidate policies</label>
        <textarea id="replay-candidate" name="candidate" rows={16} spellcheck={false}>
          {props.text}
        </textarea>
      </p>
      <div class="filters">
        <WindowFields prefix="replay" v={props.v} />
        <div class="field">
          <label for="replay-replace">The candidate is</label>
          <select id="replay-replace" name="replace">
            <option value="false" selected={!props.replace}>
              changes to the active set
            </option>
            <option value="true" selected={props.replace}>
              the whole new set
            </option>
          </select>
        </div>
      </div>
      <div class="actions">
        <button type="submit">Replay</button>
        <Busy label="Replaying the window…" />
      </div>
    </form>
  );
}

type ReplayOutcome = { report: ReplayReport } | { error: string; errors?: Parameters<typeof Diagnostics>[0]["list"]; status: PageStatus } | null;

function replayPage(c: Context<ConsoleEnv>, deps: ConsoleDeps, csrf: string, text: string, v: WindowValues, replace: boolean, outcome: ReplayOutcome) {
  return page(
    c,
    deps,
    { title: "Replay a candidate", active: "rollout", status: outcome !== null && "error" in outcome ? outcome.status : 200 },
    <>
      <h1>Replay a candidate</h1>
      <p class="lead">
        The trail's decisions of a window, decided again by candidate policies: which recorded requests would be decided differently, by flow.
        Nothing is activated.
      </p>
      {outcome !== null && "error" in outcome && (
        <Notice kind="error">
          <span data-testid="replay-error">{outcome.error}</span>
          {outcome.errors && <Diagnostics list={outcome.errors} />}
        </Notice>
      )}
      {outcome !== null && "report" in outcome && <ReplayView r={outcome.report} />}
      <ReplayForm csrf={csrf} text={text} v={v} replace={replace} />
    </>,
  );
}

export function rolloutToolsRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  const trail = trailReader(deps);

  app.get("/rollout/suggest", async (c) => {
    const session = c.get("session");
    if (session?.role !== "admin") return needsAdmin(c, deps, "Suggest a rule", "Suggesting a rule");
    const q = (k: string) => c.req.query(k);
    const v = windowValues(q);
    const run = q("run") !== undefined;
    const o = parseSuggestOptions({ name: q("name") || undefined, generalize: q("generalize") || undefined, mode: q("mode") || undefined }, { name: "Name", generalize: "Generalize", mode: "Flows" });
    const w = checkWindow(v);
    let result: { s: Suggestion; records: number } | { error: string; status: PageStatus } | null = null;
    if (run) {
      if (!o.ok) result = { error: `${o.path}: ${o.message}`, status: 400 };
      else if (!w.ok) result = { error: `${w.path}: ${w.message}`, status: 400 };
      else {
        const opts = o.value;
        result = await trail("suggest", async (sql) => {
          const seen = await observedFlows(sql, w, opts.mode);
          return { s: buildSuggestion(seen.flows, seen.deniedByRule, { ...opts, window: w }), records: seen.records };
        });
      }
    }
    const csrf = deps.keys.csrfToken(session);
    const name = q("name") ?? "suggested";
    return page(
      c,
      deps,
      { title: "Suggest a rule", active: "rollout", status: result !== null && "error" in result ? result.status : 200 },
      <>
        <h1>Suggest a rule</h1>
        <p class="lead">
          The smallest ServiceAccessPolicy that allows exactly the flows observed in a window (<code>zt suggest</code>): one rule per source, one
          target per destination, the observed ports as ranges.
        </p>
        <form class="filters" method="get" action={consoleUrl("/rollout/suggest")} data-busy>
          <input type="hidden" name="run" value="1" />
          <WindowFields prefix="suggest" v={v} />
          <div class="field">
            <label for="suggest-mode">Flows</label>
            <select id="suggest-mode" name="mode">
              <option value="denied" selected={q("mode") !== "all"}>
                would-be denials (observe mode)
              </option>
              <option value="all" selected={q("mode") === "all"}>
                every observed flow
              </option>
            </select>
          </div>
          <div class="field">
            <label for="suggest-generalize">Generalize</label>
            <select id="suggest-generalize" name="generalize">
              <option value="none" selected={q("generalize") !== "namespace"}>
                no
              </option>
              <option value="namespace" selected={q("generalize") === "namespace"}>
                a namespace's sources as one
              </option>
            </select>
          </div>
          <div class="field">
            <label for="suggest-name">Policy name</label>
            <input id="suggest-name" name="name" type="text" value={name} />
          </div>
          <button type="submit">Suggest</button>
          <Busy label="Reading the trail…" />
        </form>
        {result === null ? null : "error" in result ? (
          <Notice kind="error">
            <span data-testid="suggest-error">{result.error}</span>
          </Notice>
        ) : result.s.flows === 0 ? (
          <EmptyState title="Nothing to allow">
            <p>No flow of this kind was observed in the window: nothing needs a new rule.</p>
          </EmptyState>
        ) : (
          <>
            <SuggestView s={result.s} records={result.records} />
            <h2>Replay this suggestion over the same window</h2>
            <ReplayForm csrf={csrf} text={result.s.yaml} v={v} replace={false} />
          </>
        )}
      </>,
    );
  });

  app.get("/rollout/replay", (c) => {
    const session = c.get("session");
    if (session?.role !== "admin") return needsAdmin(c, deps, "Replay a candidate", "Replaying a candidate");
    return replayPage(c, deps, deps.keys.csrfToken(session), "", windowValues(() => undefined), false, null);
  });

  app.post("/rollout/replay", requireAdmin(), async (c) => {
    const body = await c.req.parseBody();
    const get = (k: string) => (typeof body[k] === "string" ? (body[k] as string) : undefined);
    const text = get("candidate") ?? "";
    const v = windowValues(get);
    const replace = get("replace") === "true";
    const csrf = deps.keys.csrfToken(c.get("session")!);
    const show = (o: ReplayOutcome) => replayPage(c, deps, csrf, text, v, replace, o);
    const active = deps.core.store.current();
    if (!active) return show({ error: "No policy module is loaded yet.", status: 503 });
    if (text.trim() === "") return show({ error: "Paste the candidate policies first.", status: 400 });
    const w = checkWindow(v);
    if (!w.ok) return show({ error: `${w.path}: ${w.message}`, status: 400 });
    const cand = await deps.candidates.runtime({ kind: "module", text, label: "candidate", replace }, active);
    if (!cand.ok && cand.reason === "invalid") return show({ error: "The candidate does not validate:", errors: cand.errors, status: 422 });
    if (!cand.ok) return show({ error: `The candidate was not built: ${cand.reason === "unavailable" ? cand.message : cand.reason}`, status: 503 });
    const runtime = cand.runtime;
    const r = await trail("replay", (sql) => replay(sql, w, runtime));
    return show("error" in r ? r : { report: r });
  });
}
