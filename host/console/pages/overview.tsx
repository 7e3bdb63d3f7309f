// Overview: the mode and per-destination rollout, the policy version this replica serves,
// decisions per second and the deny rate (from the trail, so every replica and sidecar
// counts), and the audit trail's health.
import type { Hono } from "hono";
import type { ServiceAccessPolicy } from "../../../compiler/model.js";
import { type DecisionCounts, decisionCounts } from "../../audit/rates.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { page } from "../views/layout.js";
import { HeadRow, KeyValues, ModeBadge, Notice, RefusedChange, Time, Version } from "../views/parts.js";

function rate(n: number, seconds: number): string {
  const r = n / seconds;
  return r >= 100 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

function percent(part: number, whole: number): string {
  return whole === 0 ? "–" : `${((100 * part) / whole).toFixed(1)} %`;
}

function DecisionsCard(props: { minute: DecisionCounts; hour: DecisionCounts }) {
  const { minute, hour } = props;
  return (
    <section class="card" aria-labelledby="card-decisions">
      <h2 id="card-decisions">Decisions (all writers)</h2>
      <div class="big" data-testid="decisions-per-second">
        {rate(minute.total, minute.seconds)}/s
      </div>
      <dl>
        <dt>deny rate, last minute</dt>
        <dd>{percent(minute.deny, minute.total)}</dd>
        <dt>last hour</dt>
        <dd data-testid="decisions-last-hour">
          {hour.total} decisions, {hour.deny} denied ({percent(hour.deny, hour.total)})
        </dd>
        <dt>observed denials, last hour</dt>
        <dd>
          <a href={consoleUrl("/rollout")}>{hour.observed_deny}</a>
        </dd>
      </dl>
    </section>
  );
}

export function overviewRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/", async (c) => {
    const active = deps.core.store.current();
    const reload = deps.core.store.lastReload();
    const sink = deps.audit.sink;
    const status = sink.status();
    let counts: { minute: DecisionCounts; hour: DecisionCounts } | { error: string };
    try {
      const [minute, hour] = await Promise.all([decisionCounts(deps.audit.query, 60), decisionCounts(deps.audit.query, 3600)]);
      counts = { minute, hour };
    } catch (e) {
      counts = { error: (e as Error).message };
    }
    const rollouts = (active?.set.policies ?? [])
      .filter((p): p is ServiceAccessPolicy => p.kind === "ServiceAccessPolicy")
      .flatMap((p) => p.rollout.map((r) => ({ policy: p.name, ...r })));
    const head = sink.head();

    return page(
      c,
      deps,
      { title: "Overview", active: "overview" },
      <>
        <h1>Overview</h1>
        <div class="cards" id="overview-cards" data-live="10" aria-live="off">
          <section class="card" aria-labelledby="card-mode">
            <h2 id="card-mode">Mode</h2>
            <div class="big">
              <ModeBadge mode={deps.core.mode} />
            </div>
            <dl>
              <dt>global (ZT_MODE)</dt>
              <dd>{deps.core.mode}</dd>
              <dt>per-destination entries</dt>
              <dd>{rollouts.length}</dd>
            </dl>
          </section>
          <section class="card" aria-labelledby="card-policy">
            <h2 id="card-policy">Policy version (this replica)</h2>
            <div class="big">
              <Version v={active?.version ?? null} />
            </div>
            <dl>
              <dt>loaded</dt>
              <dd>
                <Time iso={active?.loadedAt ?? null} />
              </dd>
              <dt>policies</dt>
              <dd>
                <a href={consoleUrl("/policies")}>{active?.policies.length ?? 0}</a>
              </dd>
              <dt>last reload</dt>
              <dd>{reload === null ? "none" : `${reload.result} (${reload.trigger})`}</dd>
            </dl>
          </section>
          {"error" in counts ? (
            <section class="card" aria-labelledby="card-decisions">
              <h2 id="card-decisions">Decisions</h2>
              <Notice kind="error">The audit trail cannot be read: {counts.error}</Notice>
            </section>
          ) : (
            <DecisionsCard minute={counts.minute} hour={counts.hour} />
          )}
          <section class="card" aria-labelledby="card-audit">
            <h2 id="card-audit">Audit trail (this replica's writer)</h2>
            <div class="big">{status.accepting ? <span class="badge allow">accepting</span> : <span class="badge deny">not accepting</span>}</div>
            <dl>
              <dt>state</dt>
              <dd>{status.detail}</dd>
              <dt>queued</dt>
              <dd>{status.queued}</dd>
              <dt>spool backlog</dt>
              <dd>{sink.backlog}</dd>
              <dt>lag</dt>
              <dd>{sink.lagMs} ms</dd>
              <dt>dropped</dt>
              <dd>{status.dropped}</dd>
              <dt>chain head</dt>
              <dd>
                <code>{head.chain_id}</code> #{head.seq}
              </dd>
            </dl>
          </section>
        </div>
        {reload !== null && reload.result === "failure" && (
          <RefusedChange errors={reload.errors}>
            The last policy change was refused; version <Version v={active?.version ?? null} /> keeps serving.
          </RefusedChange>
        )}
        <h2>Per-destination rollout</h2>
        {rollouts.length === 0 ? (
          <p class="muted">
            No policy sets <code>spec.rollout</code>: every destination follows the global mode ({deps.core.mode}).
          </p>
        ) : (
          <table>
            <HeadRow cols={["Destination", "Mode", "Policy", "Declared at"]} />
            <tbody>
              {rollouts.map((r) => (
                <tr>
                  <td class="wrap">
                    <code>{r.destination.text}</code>
                  </td>
                  <td>
                    <ModeBadge mode={r.mode} />
                  </td>
                  <td>
                    <a href={consoleUrl(`/policies/${encodeURIComponent(r.policy)}`)}>{r.policy}</a>
                  </td>
                  <td class="muted">
                    line {r.at.line}, column {r.at.col}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <KeyValues
          rows={[
            ["Module sha256", <code>{active?.wasmSha256 ?? "none"}</code>],
            ["WireGuard peers", <span class="muted">reported by each gateway's <code>zt mesh agent</code> (zt_wireguard_peer_up); the engine sees no tunnel</span>],
          ]}
        />
      </>,
    );
  });
}
