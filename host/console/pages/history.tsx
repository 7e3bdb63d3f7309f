// A policy's history in the shared state (what GET /v1/policies/{name}/history serves): every
// version, one version's document, the exact diff between any two versions (compiler/diff, as
// `zt diff` and POST /v1/diff: each set is the active one with this policy at that version), and
// rollback (admin; If-Match on the version the page showed, so a change made meanwhile is not
// silently undone).
import type { Context, Hono } from "hono";
import type { PolicyDiff } from "../../../compiler/diff/index.js";
import type { Diagnostic } from "../../../compiler/diagnostics.js";
import type { WriteRefusal } from "../../engine/shared-state.js";
import { POLICY_NAME } from "../../http/routes/policies.js";
import type { PolicyVersion } from "../../store/types.js";
import { requireAdmin } from "../auth.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { DiffView } from "../views/diff.js";
import { Diagnostics } from "../views/documents.js";
import { CsrfField, page, type PageStatus } from "../views/layout.js";
import { Busy, EmptyState, HeadRow, KeyValues, Notice, Time, Version } from "../views/parts.js";
import { YamlView } from "../views/yaml.js";

/** Versions listed on one page (the newest first); older ones page with ?before=. */
const PAGE = 100;

const sha = (v: PolicyVersion): string | null => (v.sha256 === null ? null : `sha256:${v.sha256}`);

function actionText(v: PolicyVersion): string {
  if (v.action === "rollback") return `rollback to ${v.rollback_of}`;
  return v.action === "delete" ? "deleted" : "written";
}

type Compare = { from: PolicyVersion; to: PolicyVersion; diff: PolicyDiff } | { message: string; errors?: Diagnostic[] };

async function compare(deps: ConsoleDeps, name: string, from: number, to: number): Promise<Compare> {
  const active = deps.core.store.current();
  if (!active) return { message: "No policy module is loaded yet." };
  const [a, b] = await Promise.all([deps.core.state.version(name, from), deps.core.state.version(name, to)]);
  for (const [v, n] of [[a, from], [b, to]] as const) {
    if (v === null) return { message: `"${name}" has no version ${n}.` };
    if ("ok" in v) return { message: v.message };
  }
  const va = a as PolicyVersion;
  const vb = b as PolicyVersion;
  const r = await deps.candidates.run({ kind: "compare", name, from: { document: va.document, seq: va.seq }, to: { document: vb.document, seq: vb.seq } }, active);
  if (r.ok) return { from: va, to: vb, diff: r.diff };
  if (r.reason === "invalid") return { message: `Version ${r.which === "to" ? to : from} does not build with today's other policies:`, errors: r.errors };
  return { message: `The versions were not compared: ${r.reason === "unavailable" ? r.message : r.reason}` };
}

function CompareForm(props: { name: string; versions: PolicyVersion[]; from: number | null; to: number | null }) {
  const { versions } = props;
  const choice = (id: string, label: string, field: string, selected: number | null) => (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} name={field}>
        {versions.map((v) => (
          <option value={String(v.seq)} selected={v.seq === selected}>
            {`${v.seq} (${actionText(v)})`}
          </option>
        ))}
      </select>
    </div>
  );
  return (
    <form class="filters" method="get" action={consoleUrl(`/policies/${encodeURIComponent(props.name)}/history`)} data-busy>
      {choice("cmp-from", "From version", "from", props.from ?? versions[1]?.seq ?? versions[0]?.seq ?? null)}
      {choice("cmp-to", "To version", "to", props.to ?? versions[0]?.seq ?? null)}
      <button type="submit">Compare</button>
      <Busy label="Comparing…" />
    </form>
  );
}

function CompareResult(props: { name: string; result: Compare }) {
  const r = props.result;
  if ("message" in r) {
    return (
      <Notice kind="error">
        {r.message}
        {r.errors && <Diagnostics list={r.errors} />}
      </Notice>
    );
  }
  const link = (v: PolicyVersion) => <a href={consoleUrl(`/policies/${encodeURIComponent(props.name)}/history/${v.seq}`)}>version {v.seq}</a>;
  return (
    <section aria-labelledby="compare-title" data-testid="version-diff">
      <h2 id="compare-title">
        Version {r.from.seq} → version {r.to.seq}
      </h2>
      <p class="muted">
        Each side is today's active set with {props.name} at that version ({link(r.from)}, {link(r.to)}); the answer is exact.
      </p>
      <DiffView diff={r.diff} from={`version ${r.from.seq}`} to={`version ${r.to.seq}`} />
    </section>
  );
}

function RollbackButton(props: { name: string; v: PolicyVersion; current: PolicyVersion | null; csrf: string }) {
  const { name, v, current } = props;
  return (
    <form method="post" action={consoleUrl(`/policies/${encodeURIComponent(name)}/rollback`)} class="inline" data-busy>
      <CsrfField token={props.csrf} />
      <input type="hidden" name="to" value={String(v.seq)} />
      <input type="hidden" name="if_match" value={current?.sha256 ?? ""} />
      <button type="submit" class="secondary" aria-label={`roll ${name} back to version ${v.seq}`}>
        Roll back to this
      </button>
    </form>
  );
}

async function render(c: Context<ConsoleEnv>, deps: ConsoleDeps, name: string, refused: WriteRefusal | null): Promise<Response> {
  const before = Number(c.req.query("before") ?? "0");
  const list = await deps.core.state.history(name, PAGE, Number.isSafeInteger(before) && before > 0 ? before : null);
  const title = `History of ${name}`;
  if (!Array.isArray(list)) {
    const text = list.code === "no_state_store" ? "This engine runs without a shared state: policies come from files only and have no history here." : list.message;
    return page(c, deps, { title, active: "policies", status: 503 }, <Notice kind="error">{text}</Notice>);
  }
  const session = c.get("session");
  const csrf = session?.role === "admin" ? deps.keys.csrfToken(session) : null;
  const latest = c.req.query("before") === undefined ? (list[0] ?? null) : null;
  const served = deps.core.store.current()?.policies.find((p) => p.name === name) ?? null;
  const from = Number(c.req.query("from"));
  const to = Number(c.req.query("to"));
  const compared = Number.isSafeInteger(from) && Number.isSafeInteger(to) && from > 0 && to > 0 ? await compare(deps, name, from, to) : null;
  const done = c.req.query("done");
  const status: PageStatus = refused !== null ? refused.status : compared !== null && "message" in compared ? 400 : 200;
  return page(
    c,
    deps,
    { title, active: "policies", status },
    <>
      <h1>History of {name}</h1>
      <p class="lead">
        Every change written through the API, the newest first. <a href={consoleUrl(`/policies/${encodeURIComponent(name)}`)}>The policy as it serves now</a>.
      </p>
      {done === "rolled-back" && (
        <Notice kind="ok">
          Rolled back: <code>{name}</code> now serves version <code data-testid="rolled-back-to">{c.req.query("rev")}</code>'s document (policy set{" "}
          <Version v={deps.core.store.current()?.version ?? null} />
          ).
        </Notice>
      )}
      {refused !== null && (
        <Notice kind="error">
          <span data-testid="rollback-refused">{refused.status === 412 ? `The policy changed since this page was loaded: ${refused.message}. Look at the history again before rolling back.` : refused.message}</span>
          {refused.status === 422 && <Diagnostics list={refused.diagnostics} />}
        </Notice>
      )}
      {served !== null && served.origin === "file" && (
        <Notice kind="info">
          <code>{name}</code> is served from a policy file, which owns the name: its history is the file's (version control), and the API cannot roll it back.
        </Notice>
      )}
      {list.length === 0 ? (
        <EmptyState title="No history">
          <p>
            Nothing named <code>{name}</code> was ever written through the API (<code>PUT /v1/policies/{name}</code>).
          </p>
        </EmptyState>
      ) : (
        <>
          {list.length > 1 && <CompareForm name={name} versions={list} from={compared && !("message" in compared) ? compared.from.seq : null} to={compared && !("message" in compared) ? compared.to.seq : null} />}
          {compared !== null && <CompareResult name={name} result={compared} />}
          <table data-testid="history">
            <caption>Versions</caption>
            <HeadRow cols={[["Version", "num"], "Change", "Document", "By", "Message", "When", ...(csrf !== null ? ["Roll back"] : [])]} />
            <tbody>
              {list.map((v) => (
                <tr data-seq={String(v.seq)}>
                  <td class="num">{v.seq}</td>
                  <td>
                    {actionText(v)} {latest !== null && v.seq === latest.seq && <span class="badge info">latest</span>}
                  </td>
                  <td>{v.sha256 === null ? <span class="muted">none</span> : <a href={consoleUrl(`/policies/${encodeURIComponent(name)}/history/${v.seq}`)}><Version v={sha(v)} /></a>}</td>
                  <td>{v.author ?? <span class="muted">unknown</span>}</td>
                  <td class="wrap">{v.message ?? <span class="muted">none</span>}</td>
                  <td>
                    <Time iso={v.created_at} />
                  </td>
                  {csrf !== null && (
                    <td>{v.sha256 !== null && (latest === null || latest.sha256 !== v.sha256) && served?.origin !== "file" && <RollbackButton name={name} v={v} current={latest?.action === "delete" ? null : latest} csrf={csrf} />}</td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {list.length === PAGE && (
            <p class="pager">
              <a href={consoleUrl(`/policies/${encodeURIComponent(name)}/history`, { before: list[list.length - 1]!.seq })}>Older versions »</a>
            </p>
          )}
        </>
      )}
    </>,
  );
}

export function historyRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/policies/:name/history", (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return page(c, deps, { title: "History", active: "policies", status: 404 }, <Notice kind="error">Not a policy name.</Notice>);
    return render(c, deps, name, null);
  });

  app.get("/policies/:name/history/:seq", async (c) => {
    const name = c.req.param("name");
    const seq = Number(c.req.param("seq"));
    const v = POLICY_NAME.test(name) && Number.isSafeInteger(seq) && seq > 0 ? await deps.core.state.version(name, seq) : null;
    if (v === null || "ok" in v) {
      return page(
        c,
        deps,
        { title: "Policy version", active: "policies", status: v === null ? 404 : v.status === 503 ? 503 : 404 },
        <EmptyState title="No such version">
          <p>
            {v === null ? `"${name}" has no version ${c.req.param("seq")}.` : v.message} <a href={consoleUrl(`/policies/${encodeURIComponent(name)}/history`)}>Its history</a>.
          </p>
        </EmptyState>,
      );
    }
    return page(
      c,
      deps,
      { title: `${name} version ${seq}`, active: "policies" },
      <>
        <h1>
          {name}, version {seq}
        </h1>
        <KeyValues
          rows={[
            ["Change", actionText(v)],
            ["Document sha256", v.sha256 === null ? "none" : <code>{v.sha256}</code>],
            ["By", v.author ?? "unknown"],
            ["Message", v.message ?? "none"],
            ["When", <Time iso={v.created_at} />],
          ]}
        />
        <p class="actions">
          <a class="button secondary" href={consoleUrl(`/policies/${encodeURIComponent(name)}/history`)}>
            All versions
          </a>
        </p>
        {v.document === null ? <p class="muted">This version deleted the policy.</p> : <YamlView source={v.document} label={`YAML of ${name} version ${seq}`} />}
      </>,
    );
  });

  app.post("/policies/:name/rollback", requireAdmin(), async (c) => {
    const name = c.req.param("name");
    if (!POLICY_NAME.test(name)) return c.json({ error: { code: "invalid_name", message: "not a policy name" } }, 400);
    const body = await c.req.parseBody();
    const to = Number(typeof body.to === "string" ? body.to : "");
    const ifMatch = typeof body.if_match === "string" && /^[0-9a-f]{64}$/.test(body.if_match) ? body.if_match : null;
    if (!Number.isSafeInteger(to) || to < 1) return render(c, deps, name, { ok: false, status: 400, code: "not_a_version", message: "Choose a version to roll back to." });
    const r = await deps.core.state.rollbackPolicy(name, { seq: to }, { ifMatch, author: c.get("caller"), message: `rollback to version ${to} from the console` });
    if (!r.ok) return render(c, deps, name, r);
    deps.core.log.info("policy rolled back", { policy: name, to, revision: r.stored.seq, version: r.version, caller: c.get("caller"), request_id: c.get("requestId") });
    return c.redirect(consoleUrl(`/policies/${encodeURIComponent(name)}/history`, { done: "rolled-back", rev: to }), 303);
  });
}
