// The exact diff of two policy sets (compiler/diff, what `zt diff` and POST /v1/diff report):
// every request class whose decision changes, ALLOW → DENY and DENY → ALLOW apart, each with
// one concrete request, and the destinations whose enforcement changes.
import type { ChangeLists, PolicyDiff, RegionDesc } from "../../../compiler/diff/index.js";
import { flag, names, portRanges } from "../../rollout/diff-text.js";
import { HeadRow, Notice } from "./parts.js";

function Region(props: { r: RegionDesc }) {
  return (
    <>
      <code>{props.r.pattern}</code>
      {props.r.except.length > 0 && (
        <div class="muted">
          except{" "}
          {props.r.except.map((e, i) => (
            <>
              {i > 0 ? ", " : ""}
              <code>{e}</code>
            </>
          ))}
        </div>
      )}
    </>
  );
}

const DIRECTIONS = [
  ["allow_to_deny", "ALLOW → DENY", "deny"],
  ["deny_to_allow", "DENY → ALLOW", "allow"],
] as const;

function Directions<T>(props: { kind: string; lists: ChangeLists<T>; cols: string[]; row: (t: T) => unknown }) {
  return (
    <>
      {DIRECTIONS.map(([dir, title, badge]) =>
        props.lists[dir].length === 0 ? null : (
          <table data-testid={`diff-${props.kind}-${dir}`}>
            <caption>
              {props.kind} requests <span class={`badge ${badge}`}>{title}</span> ({props.lists[dir].length} class{props.lists[dir].length === 1 ? "" : "es"})
            </caption>
            <HeadRow cols={props.cols} />
            <tbody>{props.lists[dir].map((c) => props.row(c))}</tbody>
          </table>
        ),
      )}
    </>
  );
}

export function DiffView(props: { diff: PolicyDiff; from: string; to: string }) {
  const d = props.diff;
  if (d.identical) {
    return (
      <Notice kind="ok">
        <span data-testid="diff-identical">
          No request is decided differently between {props.from} and {props.to}, and no enforcement setting changes.
        </span>
      </Notice>
    );
  }
  return (
    <section aria-label={`What changes from ${props.from} to ${props.to}`}>
      <Directions
        kind="service"
        lists={d.service}
        cols={["Source", "Destination", "Ports", "For example"]}
        row={(c) => (
          <tr>
            <td class="wrap">
              <Region r={c.source} />
            </td>
            <td class="wrap">
              <Region r={c.destination} />
            </td>
            <td>{portRanges(c.ports)}</td>
            <td class="wrap">
              <code>
                {c.witness.source} → {c.witness.destination}:{c.witness.port}
              </code>
            </td>
          </tr>
        )}
      />
      <Directions
        kind="operator"
        lists={d.operator}
        cols={["Roles", "Service", "Action", "MFA", "Incident active", "For example"]}
        row={(c) => (
          <tr>
            <td>
              any of {c.roles.any_of.join(", ")}
              {c.roles.none_of.length > 0 ? `; none of ${c.roles.none_of.join(", ")}` : ""}
            </td>
            <td>{names(c.service)}</td>
            <td>{names(c.action)}</td>
            <td>{flag(c.mfa)}</td>
            <td>{flag(c.incident)}</td>
            <td>
              roles [{c.witness.roles.join(", ")}] {c.witness.action} on {c.witness.service}
              {c.witness.mfa ? ", MFA" : ""}
              {c.witness.incidentActive ? ", incident active" : ""}
            </td>
          </tr>
        )}
      />
      <Directions
        kind="agent"
        lists={d.agent}
        cols={["Destination", "Tokens", "For example"]}
        row={(c) => (
          <tr>
            <td class="wrap">
              <Region r={c.destination} />
            </td>
            <td>
              with {c.scopes.has_all.length === 0 ? "any scopes" : `every one of ${c.scopes.has_all.join(", ")}`}
              {c.scopes.lacks_one_of === null ? "" : `, lacking one of ${c.scopes.lacks_one_of.join(", ")}`}
            </td>
            <td class="wrap">
              <code>{c.witness.destination}</code> with [{c.witness.scopes.join(", ")}]
            </td>
          </tr>
        )}
      />
      {d.enforcement.length > 0 && (
        <table data-testid="diff-enforcement">
          <caption>Enforcement (observe / enforce per destination): decisions unchanged, whether they are enforced changes</caption>
          <HeadRow cols={["Destination", "Mode", "For example"]} />
          <tbody>
            {d.enforcement.map((e) => (
              <tr>
                <td class="wrap">
                  <Region r={e.destination} />
                </td>
                <td>
                  {e.old ?? "engine default"} → {e.new ?? "engine default"}
                </td>
                <td class="wrap">
                  <code>{e.witness}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
