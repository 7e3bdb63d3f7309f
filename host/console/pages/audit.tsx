// Audit browser: the filters of GET /v1/audit (the same parser and query, host/audit/query.ts)
// as a form, keyset paging, one decision's full record with its place in the hash chain and
// whether that place checks out, and the whole result exported as NDJSON or CSV.
import type { Context, Hono } from "hono";
import { type AuditPage, type AuditQuery, parseAuditQuery, queryAudit } from "../../audit/query.js";
import type { AuditRecord } from "../../audit/record.js";
import { findRecordLink, type RecordLink } from "../../audit/record-link.js";
import { parseTime } from "../../audit/query.js";
import { exportStream, type ExportFormat } from "../audit-export.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl, type Params } from "../paths.js";
import { normaliseTime } from "../time-window.js";
import { SelectField } from "../views/fields.js";
import { page } from "../views/layout.js";
import { Busy, DecisionBadge, EmptyState, HeadRow, KeyValues, Notice, Time } from "../views/parts.js";

/** The form's fields, in the order shown; each is a parameter of GET /v1/audit. */
const TEXT_FIELDS: ReadonlyArray<[string, string, string, boolean]> = [
  ["since", "Since (UTC)", "2026-02-23T14:30:00Z", false],
  ["until", "Until (UTC)", "2026-02-23T15:30:00Z", false],
  ["source", "Source", "spiffe://hanzo.ai/hanzo-k8s/hanzo/*", true],
  ["destination", "Destination", "spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres", true],
  ["port", "Port", "5432", false],
  ["policy", "Rule or policy", "hanzo-core-policy/rule-2", false],
  ["reason", "Reason", "condition_failed:*", false],
  ["subject", "Operator", "alice@hanzo.ai", false],
  ["incident", "Incident", "INC-7", false],
];
const FILTER_KEYS = [...TEXT_FIELDS.map(([k]) => k), "decision", "enforced"];
const LIMITS = ["10", "25", "50", "100", "250", "1000"];
const DECISIONS = [["", "any"], ["ALLOW", "ALLOW"], ["DENY", "DENY"]] as const;
const ENFORCED = [["", "any"], ["true", "enforced"], ["false", "observe only"]] as const;

type Filters = Record<string, string>;

function filtersOf(c: Context<ConsoleEnv>): Filters {
  const f: Filters = {};
  for (const k of FILTER_KEYS) {
    const v = (c.req.query(k) ?? "").trim();
    if (v !== "") f[k] = k === "since" || k === "until" ? normaliseTime(v) : v;
  }
  return f;
}

function parse(f: Filters, extra: Record<string, string> = {}): ReturnType<typeof parseAuditQuery> {
  const params: Record<string, string[]> = {};
  for (const [k, v] of Object.entries({ ...f, ...extra })) params[k] = [v];
  return parseAuditQuery(params);
}

function FilterForm(props: { f: Filters; limit: string }) {
  const { f } = props;
  return (
    <form class="filters" method="get" action={consoleUrl("/audit")} data-busy aria-label="Audit filters">
      {TEXT_FIELDS.map(([k, label, example, wide]) => (
        <div class={wide ? "field wide" : "field"}>
          <label for={`f-${k}`}>{label}</label>
          <input id={`f-${k}`} name={k} type="text" value={f[k] ?? ""} placeholder={`e.g. ${example}`} size={k === "port" ? 6 : undefined} />
        </div>
      ))}
      <SelectField id="f-decision" name="decision" label="Decision" options={DECISIONS} selected={(f.decision ?? "").toUpperCase()} />
      <SelectField id="f-enforced" name="enforced" label="Enforced" options={ENFORCED} selected={f.enforced ?? ""} />
      <SelectField id="f-limit" name="limit" label="Per page" options={LIMITS.map((l) => [l, l] as const)} selected={props.limit} />
      <button type="submit">Search</button>
      <a class="button secondary" href={consoleUrl("/audit")}>
        Clear
      </a>
      <Busy label="Searching…" />
    </form>
  );
}

/** Who asked for what, in one cell. */
export function RequestSummary(props: { r: AuditRecord }) {
  const r = props.r;
  if (r.operator !== null) {
    return (
      <span>
        operator <strong>{r.operator.subject}</strong> ({r.operator.roles.join(", ") || "no roles"}
        {r.operator.mfa ? ", MFA" : ""}
        {r.operator.incident !== null ? `, incident ${r.operator.incident}` : ""}) → {r.target?.service} / {r.target?.action}
      </span>
    );
  }
  return (
    <span class="wrap">
      <code>{r.source?.spiffe_id ?? "(agent)"}</code> → <code>{r.destination?.spiffe_id}</code>:{r.destination?.port}
    </span>
  );
}

function recordUrl(r: AuditRecord): string {
  return consoleUrl(`/audit/record/${r.decision_id}`, { ts: r.timestamp });
}

function Results(props: { page: AuditPage; f: Filters; limit: string; cursor: string }) {
  const { page: p, f } = props;
  if (p.records.length === 0) {
    return (
      <EmptyState title={props.cursor !== "" ? "No more records" : "No decision matches these filters"}>
        <p>
          Every decision the engine and its sidecars make, allow and deny, lands in the trail. Widen the time range, use a pattern such as{" "}
          <code>spiffe://hanzo.ai/hanzo-k8s/hanzo/*</code> for a source or destination, or <a href={consoleUrl("/audit")}>clear the filters</a>.
        </p>
      </EmptyState>
    );
  }
  const params: Params = { ...f, limit: props.limit === "100" ? null : props.limit };
  return (
    <>
      <table data-testid="audit-results">
        <caption>
          {p.records.length} record{p.records.length === 1 ? "" : "s"}
          {props.cursor !== "" ? " (a later page)" : ""}, newest first
        </caption>
        <HeadRow cols={["Time (UTC)", "Decision", "Request", "Rule", "Reason", "Record"]} />
        <tbody>
          {p.records.map((r) => (
            <tr data-decision-id={r.decision_id}>
              <td>
                <Time iso={r.timestamp} />
              </td>
              <td>
                <DecisionBadge decision={r.decision} enforced={r.enforced} />
              </td>
              <td>
                <RequestSummary r={r} />
              </td>
              <td>{r.policy_matched === null ? <span class="muted">none</span> : <code>{r.policy_matched}</code>}</td>
              <td>
                <code>{r.reason}</code>
              </td>
              <td>
                <a href={recordUrl(r)} aria-label={`record ${r.decision_id}`}>
                  details
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <nav class="pager" aria-label="Pages">
        {props.cursor !== "" && <a href={consoleUrl("/audit", params)}>« Newest</a>}
        {p.next_cursor !== null ? (
          <a href={consoleUrl("/audit", { ...params, cursor: p.next_cursor })} rel="next">
            Older records »
          </a>
        ) : (
          <span class="muted">End of the results.</span>
        )}
      </nav>
    </>
  );
}

function ChainView(props: { link: RecordLink }) {
  const { link } = props;
  const v = link.verification;
  const mark = (ok: boolean | null, yes: string, unknown: string) =>
    ok === null ? <span class="badge info">{unknown}</span> : ok ? <span class="badge allow">{yes}</span> : <span class="badge deny">broken</span>;
  return (
    <>
      <h2>Place in the hash chain</h2>
      {v.problem === null ? (
        <Notice kind="ok">This record's hash and its links check out.</Notice>
      ) : (
        <Notice kind="error">Tampering evidence: {v.problem}. Run <code>zt audit verify</code> for the whole trail.</Notice>
      )}
      <KeyValues
        rows={[
          ["Chain", <code>{link.chain_id}</code>],
          ["Position", <span data-testid="chain-seq">#{link.seq}</span>],
          ["Hash", <code>{link.hash}</code>],
          ["Previous hash", <code>{link.prev_hash}</code>],
          ["Content", mark(v.content, "matches its hash", "")],
          ["Link to previous", mark(v.previous, link.seq === 1 ? "starts the chain" : "matches", "previous record gone (retention)")],
          ["Link from next", mark(v.next, "matches", "newest record of its chain")],
        ]}
      />
    </>
  );
}

export function auditRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/audit", async (c) => {
    const f = filtersOf(c);
    const limit = LIMITS.includes(c.req.query("limit") ?? "") ? (c.req.query("limit") as string) : "100";
    const cursor = c.req.query("cursor") ?? "";
    const q = parse(f, { limit, ...(cursor !== "" ? { cursor } : {}) });
    let result: { page: AuditPage } | { error: string; status: 400 | 503 };
    if (!q.ok) result = { error: `${q.error.path.replace(/^query\./, "")}: ${q.error.message}`, status: 400 };
    else {
      try {
        result = { page: await queryAudit(deps.audit.query, q.value) };
      } catch (e) {
        result = { error: `the audit trail cannot be read: ${(e as Error).message}`, status: 503 };
      }
    }
    const exportParams: Params = { ...f };
    return page(
      c,
      deps,
      { title: "Audit", active: "audit", status: "error" in result ? result.status : 200 },
      <>
        <h1>Audit trail</h1>
        <p class="lead">Every decision, allow and deny, from the engine and its sidecars. Patterns: one segment <code>*</code>, any depth <code>**</code>.</p>
        <FilterForm f={f} limit={limit} />
        {"error" in result ? <Notice kind="error">{result.error}</Notice> : <Results page={result.page} f={f} limit={limit} cursor={cursor} />}
        {!("error" in result) && result.page.records.length > 0 && (
          <p class="actions">
            Export every matching record:
            <a href={consoleUrl("/audit/export", { ...exportParams, format: "ndjson" })} download>
              NDJSON
            </a>
            <a href={consoleUrl("/audit/export", { ...exportParams, format: "csv" })} download>
              CSV
            </a>
          </p>
        )}
      </>,
    );
  });

  app.get("/audit/export", (c) => {
    const format = c.req.query("format") ?? "ndjson";
    if (format !== "ndjson" && format !== "csv") return c.json({ error: { code: "invalid_request", message: 'format must be "ndjson" or "csv"' } }, 400);
    const q = parse(filtersOf(c));
    if (!q.ok) return c.json({ error: { code: "invalid_request", message: `${q.error.path}: ${q.error.message}`, path: q.error.path } }, 400);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    return new Response(exportStream(deps.audit.query, q.value as AuditQuery, format as ExportFormat), {
      headers: {
        "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson",
        "content-disposition": `attachment; filename="zt-audit-${stamp}.${format === "csv" ? "csv" : "ndjson"}"`,
        "cache-control": "no-store",
      },
    });
  });

  app.get("/audit/record/:id", async (c) => {
    const id = c.req.param("id");
    const tsText = c.req.query("ts");
    let ts: Date | null = null;
    if (tsText !== undefined) {
      const t = parseTime(tsText, "ts");
      if (!t.ok) return page(c, deps, { title: "Record", active: "audit", status: 400 }, <Notice kind="error">ts {t.error.message}</Notice>);
      ts = t.value;
    }
    let link: RecordLink | null;
    try {
      link = await findRecordLink(deps.audit.query, id, ts);
    } catch (e) {
      return page(c, deps, { title: "Record", active: "audit", status: 503 }, <Notice kind="error">The audit trail cannot be read: {(e as Error).message}</Notice>);
    }
    if (link === null) {
      return page(
        c,
        deps,
        { title: "Record", active: "audit", status: 404 },
        <EmptyState title="No such decision">
          <p>
            No record with id <code>{id}</code>
            {ts !== null ? " at that time" : ""} is in the trail (retention may have removed it). <a href={consoleUrl("/audit")}>Back to the audit browser</a>.
          </p>
        </EmptyState>,
      );
    }
    const r = link.record;
    return page(
      c,
      deps,
      { title: `Decision ${r.decision_id}`, active: "audit" },
      <>
        <h1>
          Decision <DecisionBadge decision={r.decision} enforced={r.enforced} />
        </h1>
        <KeyValues
          rows={[
            ["Decision id", <code>{r.decision_id}</code>],
            ["Time", <Time iso={r.timestamp} />],
            ["Request", <RequestSummary r={r} />],
            ["Rule", r.policy_matched === null ? <span class="muted">none</span> : <code>{r.policy_matched}</code>],
            ["Reason", <code>{r.reason}</code>],
            ["Enforced", r.enforced ? "yes" : "no (observe mode)"],
            ["Policy version", <code>{r.policy_version}</code>],
            ["Latency", `${r.latency_us} µs`],
            ["Origin", <code>{r.origin}</code>],
            ["Caller", r.caller === null ? <span class="muted">unknown</span> : <code>{r.caller}</code>],
          ]}
        />
        {r.destination !== null && r.source !== null && (
          <p>
            <a href={consoleUrl("/audit", { source: r.source.spiffe_id, destination: r.destination.spiffe_id, port: r.destination.port })}>
              Other decisions on this edge
            </a>
          </p>
        )}
        <ChainView link={link} />
        <details>
          <summary>The record as JSON</summary>
          <pre class="code">{JSON.stringify(r, null, 2)}</pre>
        </details>
      </>,
    );
  });
}
