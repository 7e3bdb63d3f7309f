// Small pieces the pages share: decision badges, times, empty states, notices, the loading
// indicator that console.js shows while a long query runs.
import type { Child } from "hono/jsx";

export function DecisionBadge(props: { decision: "ALLOW" | "DENY"; enforced?: boolean }) {
  const observed = props.decision === "DENY" && props.enforced === false;
  return (
    <span class={`badge ${props.decision === "ALLOW" ? "allow" : observed ? "observe" : "deny"}`}>
      {observed ? "DENY (observed)" : props.decision}
    </span>
  );
}

export function ModeBadge(props: { mode: "observe" | "enforce" }) {
  return <span class={`badge ${props.mode === "enforce" ? "deny" : "observe"}`}>{props.mode}</span>;
}

/** A timestamp, machine-readable and in UTC for people (the trail's clock). */
export function Time(props: { iso: string | null }) {
  if (props.iso === null) return <span class="muted">never</span>;
  const text = props.iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
  return <time datetime={props.iso}>{text}</time>;
}

export function EmptyState(props: { title: string; children: Child }) {
  return (
    <section class="empty" aria-label={props.title}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

export function Notice(props: { kind: "ok" | "error" | "warn" | "info"; children: Child }) {
  return (
    <div class={`notice ${props.kind === "info" ? "" : props.kind}`} role={props.kind === "error" ? "alert" : "status"}>
      {props.children}
    </div>
  );
}

/** Shown by console.js while the enclosing form's request is in flight. */
export function Busy(props: { label?: string }) {
  return (
    <span class="busy-indicator" aria-hidden="true">
      <span class="spinner"></span>
      {props.label ?? "Loading…"}
    </span>
  );
}

export function KeyValues(props: { rows: ReadonlyArray<[string, Child]> }) {
  return (
    <dl class="kv">
      {props.rows.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </>
      ))}
    </dl>
  );
}

/** The short form of a sha256 version for tables; the full one in the title. */
export function Version(props: { v: string | null }) {
  if (props.v === null) return <span class="muted">none</span>;
  const short = props.v.replace(/^sha256:/, "").slice(0, 12);
  return (
    <code title={props.v}>
      sha256:{short}…
    </code>
  );
}

/** A table's header row; a column given as [label, "num"] is right-aligned (counts, ports). */
export function HeadRow(props: { cols: ReadonlyArray<string | readonly [string, "num"]> }) {
  return (
    <thead>
      <tr>
        {props.cols.map((col) =>
          typeof col === "string" ? (
            <th scope="col">{col}</th>
          ) : (
            <th scope="col" class="num">
              {col[0]}
            </th>
          ),
        )}
      </tr>
    </thead>
  );
}

/** The errors of a refused policy change, while the previous version keeps serving. */
export function RefusedChange(props: { errors: readonly string[]; children: Child }) {
  return (
    <Notice kind="warn">
      {props.children}
      <ul>
        {props.errors.map((e) => (
          <li>
            <code>{e}</code>
          </li>
        ))}
      </ul>
    </Notice>
  );
}
