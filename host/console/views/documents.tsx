// A form of policy or test documents (admin only), and what went wrong with them: the pages
// that compile a candidate share both.
import type { Diagnostic } from "../../../compiler/diagnostics.js";
import type { Session } from "../session.js";
import { CsrfField } from "./layout.js";
import { Busy, Notice } from "./parts.js";

/** The outcomes every candidate page has besides its own result. */
export type DocumentsProblem = { errors: Diagnostic[] } | { message: string };

export function DocumentsProblemView(props: { problem: DocumentsProblem }) {
  const p = props.problem;
  if ("message" in p) return <Notice kind="error">{p.message}</Notice>;
  return (
    <Notice kind="error">
      The documents do not validate:
      <Diagnostics list={p.errors} />
    </Notice>
  );
}

/** Every `line:col: message` of a refused document. */
export function Diagnostics(props: { list: readonly Diagnostic[] }) {
  return (
    <ul>
      {props.list.map((d) => (
        <li>
          <code>
            {d.line}:{d.col}: {d.message}
          </code>
        </li>
      ))}
    </ul>
  );
}

export function DocumentsForm(props: {
  session: Session | null;
  csrf: (s: Session) => string;
  action: string;
  id: string;
  label: string;
  text: string;
  rows: number;
  submit: string;
  busy: string;
  /** Said instead of the form to someone without the admin role. */
  needsAdmin: string;
}) {
  const s = props.session;
  if (s === null || s.role !== "admin") return <Notice kind="info">{props.needsAdmin}</Notice>;
  return (
    <form method="post" action={props.action} data-busy>
      <CsrfField token={props.csrf(s)} />
      <p>
        <label for={props.id}>{props.label}</label>
        <textarea id={props.id} name="documents" rows={props.rows} spellcheck={false}>
          {props.text}
        </textarea>
      </p>
      <div class="actions">
        <button type="submit">{props.submit}</button>
        <Busy label={props.busy} />
      </div>
    </form>
  );
}
