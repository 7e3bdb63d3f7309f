// The shared rollout settings on the rollout page (what GET /v1/rollout shows) and the form that
// changes them (admin): global mode, per-destination modes, canaries. The form carries the
// settings' revision, written as If-Match, so a change made meanwhile is refused, not overwritten.
// Its rows are plain inputs (no script): the existing entries and empty rows to add one.
import type { RolloutInput } from "../../engine/rollout.js";
import { parseRolloutInput } from "../../engine/rollout.js";
import type { RolloutSettings } from "../../store/types.js";
import { consoleUrl } from "../paths.js";
import { CsrfField } from "./layout.js";
import { Busy, HeadRow, ModeBadge, Notice, Time } from "./parts.js";

/** What the form holds: the settings, or what was submitted when it was refused. */
export interface SettingsForm {
  revision: number;
  mode: string;
  destinations: Array<{ destination: string; mode: string }>;
  canary: Array<{ destination: string; replicas: string }>;
  message: string;
}

export interface CanaryAssignment {
  destination: string;
  replicas: number;
  enforcing: string[];
}

const EMPTY_ROWS = 2;

export function formOf(s: RolloutSettings): SettingsForm {
  return {
    revision: s.rev,
    mode: s.mode ?? "",
    destinations: s.destinations.map((d) => ({ destination: d.destination, mode: d.mode })),
    canary: s.canary.map((c) => ({ destination: c.destination, replicas: String(c.replicas) })),
    message: "",
  };
}

function strings(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return typeof v === "string" ? [v] : [];
}

/** The submitted form (repeated fields as lists) as the form's values and, when valid, the PUT /v1/rollout input. */
export function readSettingsForm(body: Record<string, unknown>): { form: SettingsForm; input: RolloutInput } | { form: SettingsForm; error: string } {
  const dp = strings(body.dest_pattern);
  const dm = strings(body.dest_mode);
  const cp = strings(body.canary_pattern);
  const cn = strings(body.canary_replicas);
  const form: SettingsForm = {
    revision: Number(strings(body.revision)[0] ?? "NaN"),
    mode: strings(body.mode)[0] ?? "",
    destinations: dp.map((d, i) => ({ destination: d.trim(), mode: dm[i] ?? "" })).filter((d) => d.destination !== ""),
    canary: cp.map((d, i) => ({ destination: d.trim(), replicas: (cn[i] ?? "").trim() })).filter((c) => c.destination !== ""),
    message: (strings(body.message)[0] ?? "").trim(),
  };
  if (!Number.isSafeInteger(form.revision) || form.revision < 0) return { form, error: "The form lacks the settings' revision; reload the page." };
  // The same checks as PUT /v1/rollout, on the same JSON shape; a row number says where.
  const json = {
    mode: form.mode === "" ? null : form.mode,
    destinations: form.destinations,
    canary: form.canary.map((c) => ({ destination: c.destination, replicas: /^\d{1,4}$/.test(c.replicas) ? Number(c.replicas) : c.replicas })),
  };
  const r = parseRolloutInput(json);
  if (!r.ok) {
    const row = /^\$\.(destinations|canary)\[(\d+)\]\.?(\w*)/.exec(r.path);
    const where = row ? `${row[1] === "canary" ? "Canary" : "Per-destination"} row ${Number(row[2]) + 1}${row[3] ? ` (${row[3]})` : ""}` : r.path;
    return { form, error: `${where}: ${r.message}` };
  }
  if (form.message.length > 1024) return { form, error: "The message is longer than 1024 characters." };
  return { form, input: r.value };
}

function ModeSelect(props: { id: string; name: string; value: string; label: string; allowDefault: boolean; envMode: string }) {
  return (
    <select id={props.id} name={props.name} aria-label={props.label}>
      {props.allowDefault && (
        <option value="" selected={props.value === ""}>
          {`each replica's ZT_MODE (${props.envMode} here)`}
        </option>
      )}
      <option value="observe" selected={props.value === "observe"}>
        observe
      </option>
      <option value="enforce" selected={props.value === "enforce"}>
        enforce
      </option>
    </select>
  );
}

export function RolloutSettingsView(props: {
  settings: RolloutSettings;
  effective: "observe" | "enforce";
  envMode: "observe" | "enforce";
  assignments: CanaryAssignment[];
  live: readonly string[];
  csrf: string | null;
  form: SettingsForm;
  error: string | null;
  saved: boolean;
}) {
  const { settings: s, form, csrf } = props;
  return (
    <section aria-labelledby="settings-title">
      <h2 id="settings-title">Rollout settings (every replica)</h2>
      {props.saved && <Notice kind="ok">The rollout settings are saved (revision {s.rev}); every replica applies them.</Notice>}
      {props.error !== null && (
        <Notice kind="error">
          <span data-testid="settings-error">{props.error}</span>
        </Notice>
      )}
      <p class="muted">
        For a service or agent request the first that applies wins: a canary (enforce on the chosen replicas, observe on the others), a
        per-destination mode, the policy's own <code>spec.rollout</code>, the global mode, <code>ZT_MODE</code>.
      </p>
      <dl class="kv" data-testid="rollout-settings">
        <dt>Global mode</dt>
        <dd>
          <ModeBadge mode={props.effective} /> {s.mode === null ? "(ZT_MODE)" : "(set here)"}
        </dd>
        <dt>Revision</dt>
        <dd>
          {s.rev === 0 ? "never written" : s.rev} {s.at !== null && <>by {s.author ?? "unknown"} at <Time iso={s.at} /></>}
          {s.message !== null && <> — {s.message}</>}
        </dd>
        <dt>Live replicas</dt>
        <dd>{props.live.join(", ")}</dd>
      </dl>
      {props.assignments.length > 0 && (
        <table data-testid="canaries">
          <caption>Canaries: the replicas that enforce</caption>
          <HeadRow cols={["Destination", ["Replicas", "num"], "Enforcing"]} />
          <tbody>
            {props.assignments.map((a) => (
              <tr>
                <td class="wrap">
                  <code>{a.destination}</code>
                </td>
                <td class="num">{a.replicas}</td>
                <td>{a.enforcing.length === 0 ? <span class="muted">none live</span> : a.enforcing.join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {csrf === null ? (
        <Notice kind="info">Changing the rollout settings needs the zt-admin role, as PUT /v1/rollout does.</Notice>
      ) : (
        <form method="post" action={consoleUrl("/rollout/settings")} data-busy class="settings">
          <CsrfField token={csrf} />
          <input type="hidden" name="revision" value={String(form.revision)} />
          <p>
            <label for="set-mode">Global mode</label> <ModeSelect id="set-mode" name="mode" value={form.mode} label="Global mode" allowDefault={true} envMode={props.envMode} />
          </p>
          <table>
            <caption>Per-destination modes (leave a pattern empty to remove its row)</caption>
            <HeadRow cols={["Destination (SPIFFE pattern)", "Mode"]} />
            <tbody>
              {[...form.destinations, ...Array.from({ length: EMPTY_ROWS }, () => ({ destination: "", mode: "enforce" }))].map((d, i) => (
                <tr>
                  <td>
                    <input type="text" name="dest_pattern" value={d.destination} aria-label={`Per-destination row ${i + 1} destination`} placeholder="spiffe://hanzo.ai/lux-k8s/lux/**" class="pattern" />
                  </td>
                  <td>
                    <ModeSelect id={`dest-mode-${i}`} name="dest_mode" value={d.mode} label={`Per-destination row ${i + 1} mode`} allowDefault={false} envMode={props.envMode} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <table>
            <caption>Canaries: enforce on this many replicas, observe on the others</caption>
            <HeadRow cols={["Destination (SPIFFE pattern)", "Replicas"]} />
            <tbody>
              {[...form.canary, { destination: "", replicas: "1" }].map((c, i) => (
                <tr>
                  <td>
                    <input type="text" name="canary_pattern" value={c.destination} aria-label={`Canary row ${i + 1} destination`} placeholder="spiffe://hanzo.ai/hanzo-k8s/hanzo/postgres" class="pattern" />
                  </td>
                  <td>
                    <input type="number" name="canary_replicas" value={c.replicas} min="1" max="1000" aria-label={`Canary row ${i + 1} replicas`} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p>
            <label for="set-message">Why (kept with the change)</label>
            <input id="set-message" name="message" type="text" maxlength={1024} value={form.message} class="pattern" />
          </p>
          <div class="actions">
            <button type="submit">Save rollout settings</button>
            <Busy label="Saving…" />
          </div>
        </form>
      )}
    </section>
  );
}
