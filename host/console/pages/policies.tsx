// Policies: the active set (what GET /v1/policies reports, from the same store), and one
// policy with its rules, its per-destination rollout and its YAML (its history: history.tsx).
import type { Hono } from "hono";
import type { Policy } from "../../../compiler/model.js";
import type { PolicyInfo } from "../../engine/policy-store.js";
import type { ConsoleDeps, ConsoleEnv } from "../context.js";
import { consoleUrl } from "../paths.js";
import { page } from "../views/layout.js";
import { EmptyState, HeadRow, KeyValues, ModeBadge, Notice, RefusedChange, Time, Version } from "../views/parts.js";
import { YamlView } from "../views/yaml.js";

function RulesTable(props: { policy: Policy }) {
  const p = props.policy;
  if (p.kind === "ServiceAccessPolicy") {
    return (
      <table>
        <caption>Rules, in evaluation order</caption>
        <HeadRow cols={["Rule", "Action", "From", "To", "Decisions"]} />
        <tbody>
          {p.rules.map((r) => (
            <tr>
              <td>
                <code>{r.id}</code>
              </td>
              <td>
                <span class={`badge ${r.action === "ALLOW" ? "allow" : "deny"}`}>{r.action}</span>
              </td>
              <td class="wrap">
                <code>{r.from.text}</code>
              </td>
              <td class="wrap">
                {r.to.map((t) => (
                  <div>
                    <code>{t.spiffe.text}</code>
                    {t.ports.length > 0 ? ` ports ${t.ports.map((x) => (x.lo === x.hi ? `${x.lo}` : `${x.lo}-${x.hi}`)).join(", ")}` : " any port"}
                  </div>
                ))}
              </td>
              <td>
                <a href={consoleUrl("/audit", { policy: r.id })}>decisions</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  return (
    <table>
      <caption>Rules, in evaluation order</caption>
      <HeadRow cols={["Rule", "Role", "Targets", "Conditions", "Decisions"]} />
      <tbody>
        {p.rules.map((r) => (
          <tr>
            <td>
              <code>{r.id}</code>
            </td>
            <td>{r.role}</td>
            <td>
              {r.targets.map((t) => (
                <div>
                  {t.service}: {t.actions.join(", ")}
                </div>
              ))}
            </td>
            <td>{[r.conditions.requireMFA ? "MFA" : "", r.conditions.requireIncident ? "active incident" : ""].filter(Boolean).join(", ") || "none"}</td>
            <td>
              <a href={consoleUrl("/audit", { policy: r.id })}>decisions</a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function policiesRoutes(app: Hono<ConsoleEnv>, deps: ConsoleDeps): void {
  app.get("/policies", (c) => {
    const active = deps.core.store.current();
    const reload = deps.core.store.lastReload();
    const policies: readonly PolicyInfo[] = active?.policies ?? [];
    return page(
      c,
      deps,
      { title: "Policies", active: "policies" },
      <>
        <h1>Policies</h1>
        <KeyValues
          rows={[
            ["Active version", <Version v={active?.version ?? null} />],
            ["Loaded", <Time iso={active?.loadedAt ?? null} />],
            ["Last reload", reload === null ? "none" : `${reload.result} (${reload.trigger}) at ${reload.at}`],
          ]}
        />
        <p class="actions">
          <a class="button secondary" href={consoleUrl("/diff")}>
            Check a policy change
          </a>
        </p>
        {reload?.result === "failure" && <RefusedChange errors={reload.errors}>The last change was refused and the version above keeps serving:</RefusedChange>}
        {policies.length === 0 ? (
          <EmptyState title="No policies">
            <p>
              Nothing is allowed: every request is denied by default. Add policy files under <code>ZT_POLICY_PATH</code> or write one with{" "}
              <code>PUT /v1/policies/&lt;name&gt;</code>.
            </p>
          </EmptyState>
        ) : (
          <table data-testid="policies">
            <caption>The active set</caption>
            <HeadRow cols={["Name", "Kind", ["Rules", "num"], "Origin", "Version", "Active since"]} />
            <tbody>
              {policies.map((p) => (
                <tr>
                  <td>
                    <a href={consoleUrl(`/policies/${encodeURIComponent(p.name)}`)}>{p.name}</a>
                  </td>
                  <td>{p.kind}</td>
                  <td class="num">{p.rules.length}</td>
                  <td>{p.origin === "api" ? "API" : "file"}</td>
                  <td>
                    <Version v={p.version} />
                  </td>
                  <td>
                    <Time iso={p.loaded_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </>,
    );
  });

  app.get("/policies/:name", async (c) => {
    const name = c.req.param("name");
    const active = deps.core.store.current();
    const info = active?.policies.find((p) => p.name === name);
    const policy = active?.set.policies.find((p) => p.name === name);
    if (!info || !policy) {
      return page(
        c,
        deps,
        { title: "Policy", active: "policies", status: 404 },
        <EmptyState title="No such policy">
          <p>
            No active policy is named <code>{name}</code>. <a href={consoleUrl("/policies")}>The active set</a>.
          </p>
        </EmptyState>,
      );
    }
    const text = await deps.core.store.policyText(name);
    return page(
      c,
      deps,
      { title: `Policy ${name}`, active: "policies" },
      <>
        <h1>{name}</h1>
        <KeyValues
          rows={[
            ["Kind", info.kind],
            ["Origin", info.origin === "api" ? "written through the API" : "policy file"],
            ["Version", <code>{info.version}</code>],
            ["Active since", <Time iso={info.loaded_at} />],
          ]}
        />
        <RulesTable policy={policy} />
        {policy.kind === "ServiceAccessPolicy" && policy.rollout.length > 0 && (
          <>
            <h2>Rollout</h2>
            <ul>
              {policy.rollout.map((r) => (
                <li>
                  <code>{r.destination.text}</code> <ModeBadge mode={r.mode} />
                </li>
              ))}
            </ul>
          </>
        )}
        <p class="actions">
          <a class="button secondary" href={consoleUrl("/diff", { policy: name })}>
            Check a change to this policy
          </a>
          <a class="button secondary" href={consoleUrl(`/policies/${encodeURIComponent(name)}/history`)}>
            History{info.origin === "api" ? ", compare and roll back" : ""}
          </a>
        </p>
        <h2>Document</h2>
        {text === null ? (
          <Notice kind="warn">The policy's file cannot be read now; the version above keeps serving.</Notice>
        ) : (
          <YamlView source={text} label={`YAML of ${name}`} />
        )}
      </>,
    );
  });
}
