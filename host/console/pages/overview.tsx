// Overview: the mode and per-destination rollout, the policy version each replica serves and
// whether they agree (the shared state's heartbeats, as GET /v1/replicas), decisions per second
// and the deny rate (from the trail, so every replica and sidecar counts), the audit trail's
// health, and the WireGuard peers the mesh agents report up (their own /metrics).
import type { Hono } from "hono";
import type { ServiceAccessPolicy } from "../../../compiler/model.js";
import { type DecisionCounts, decisionCounts } from "../../audit/rates.js";
import type { ReplicaView } from "../../engine/shared-state.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { type AgentPeers, readMeshPeers } from "../mesh-peers.js";
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

type Replicas = ReplicaView | { error: string };

function ReplicasCard(props: { replicas: Replicas }) {
  const r = props.replicas;
  if ("error" in r) {
    return (
      <section class="card" aria-labelledby="card-replicas">
        <h2 id="card-replicas">Replicas</h2>
        <Notice kind="warn">{r.error}</Notice>
      </section>
    );
  }
  const live = r.replicas.filter((x) => !x.stale);
  return (
    <section class="card" aria-labelledby="card-replicas">
      <h2 id="card-replicas">Replicas</h2>
      <div class="big" data-testid="replicas-agree">
        {r.agree ? <span class="badge allow">agree</span> : <span class="badge deny">disagree</span>}
      </div>
      <dl>
        <dt>live</dt>
        <dd data-testid="replicas-live">{live.length}</dd>
        <dt>stale</dt>
        <dd>{r.replicas.length - live.length}</dd>
        <dt>versions served</dt>
        <dd>{r.versions.length}</dd>
        <dt>store revision</dt>
        <dd>{r.revision ?? "unknown"}</dd>
      </dl>
    </section>
  );
}

function ReplicasTable(props: { replicas: Replicas }) {
  const r = props.replicas;
  if ("error" in r) return null;
  if (r.replicas.length === 0) return <p class="muted">No replica has reported to the shared state yet (each does every heartbeat).</p>;
  return (
    <table data-testid="replicas">
      <caption>Policy version per replica{r.agree ? "" : " — the live replicas do not agree"}</caption>
      <HeadRow cols={["Replica", "Policy version", ["Revision", "num"], "Mode", "Canary for", "Heartbeat", "Last error"]} />
      <tbody>
        {r.replicas.map((x) => (
          <tr data-replica={x.id}>
            <td>
              <code>{x.id}</code> {x.stale && <span class="badge observe">stale</span>}
            </td>
            <td>
              <Version v={x.policy_version} /> {!x.stale && r.versions.length > 1 && <span class="badge deny">differs</span>}
            </td>
            <td class="num">
              {x.revision}
              {x.matches_store ? "" : " (behind)"}
            </td>
            <td>
              <ModeBadge mode={x.mode} />
            </td>
            <td class="wrap">{x.canary.length === 0 ? <span class="muted">none</span> : x.canary.map((d) => <code>{d} </code>)}</td>
            <td>{x.seconds_since_heartbeat} s ago</td>
            <td class="wrap">{x.last_error ?? <span class="muted">none</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** WireGuard peers up, per mesh agent; "not configured" says so rather than showing a number. */
export function MeshCard(props: { agents: AgentPeers[] | null }) {
  const agents = props.agents;
  if (agents === null) {
    return (
      <section class="card" aria-labelledby="card-mesh">
        <h2 id="card-mesh">WireGuard peers</h2>
        <p class="muted" data-testid="mesh-not-configured">
          Not configured: the engine sees no tunnel. Set <code>ZT_CONSOLE_MESH_METRICS</code> to the <code>zt mesh agent</code> metrics URLs
          (port 9586) to show <code>zt_wireguard_peer_up</code> here.
        </p>
      </section>
    );
  }
  const read = agents.filter((a): a is Extract<AgentPeers, { ok: true }> => a.ok);
  const peers = read.flatMap((a) => a.peers);
  const up = peers.filter((p) => p.up).length;
  return (
    <section class="card" aria-labelledby="card-mesh">
      <h2 id="card-mesh">WireGuard peers</h2>
      <div class="big" data-testid="mesh-peers-up">
        {read.length === 0 ? <span class="muted">unknown</span> : `${up} of ${peers.length} up`}
      </div>
      <ul class="plain" data-testid="mesh-agents">
        {agents.map((a) => (
          <li>
            <code class="wrap">{a.url}</code>:{" "}
            {a.ok ? (
              a.peers.length === 0 ? (
                <span class="muted">no peers</span>
              ) : (
                a.peers.map((p) => <span class={`badge ${p.up ? "allow" : "deny"}`}>{`${p.cluster} ${p.up ? "up" : "down"}`} </span>)
              )
            ) : (
              <span class="badge observe">{`not readable: ${a.error}`}</span>
            )}
          </li>
        ))}
      </ul>
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
    const replicasP = deps.core.state.replicaView().then(
      (v): Replicas => ("ok" in v ? { error: v.code === "no_state_store" ? "This engine runs without a shared state: it is the only replica." : v.message } : v),
      (e: Error): Replicas => ({ error: e.message }),
    );
    const meshP = deps.meshMetrics.length === 0 ? Promise.resolve(null) : readMeshPeers(deps.meshMetrics);
    try {
      const [minute, hour] = await Promise.all([decisionCounts(deps.audit.query, 60), decisionCounts(deps.audit.query, 3600)]);
      counts = { minute, hour };
    } catch (e) {
      counts = { error: (e as Error).message };
    }
    const [replicas, mesh] = await Promise.all([replicasP, meshP]);
    const settings = deps.core.state.rollout.current();
    const mode = deps.core.state.rollout.global();
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
            <div class="big" data-testid="global-mode">
              <ModeBadge mode={mode} />
            </div>
            <dl>
              <dt>global</dt>
              <dd>{settings.mode === null ? `ZT_MODE (${deps.core.mode})` : `rollout settings (revision ${settings.rev})`}</dd>
              <dt>per-destination settings</dt>
              <dd>
                <a href={consoleUrl("/rollout")}>{settings.destinations.length}</a>
              </dd>
              <dt>canaries</dt>
              <dd>{settings.canary.length}</dd>
              <dt>policies' spec.rollout</dt>
              <dd>{rollouts.length}</dd>
            </dl>
          </section>
          <ReplicasCard replicas={replicas} />
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
          <MeshCard agents={mesh} />
        </div>
        <div id="overview-replicas" data-live="10">
          <ReplicasTable replicas={replicas} />
        </div>
        {reload !== null && reload.result === "failure" && (
          <RefusedChange errors={reload.errors}>
            The last policy change was refused; version <Version v={active?.version ?? null} /> keeps serving.
          </RefusedChange>
        )}
        <h2>Per-destination rollout in the policies</h2>
        {rollouts.length === 0 ? (
          <p class="muted">
            No policy sets <code>spec.rollout</code>. The shared rollout settings (per-destination modes, canaries) are on the{" "}
            <a href={consoleUrl("/rollout")}>rollout page</a>.
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
        <KeyValues rows={[["Module sha256 (this replica)", <code>{active?.wasmSha256 ?? "none"}</code>]]} />
      </>,
    );
  });
}
