// Form fields the filter forms share: a labelled select, and the time-window select.
import { WINDOWS } from "../time-window.js";

export function SelectField(props: { id: string; name: string; label: string; options: ReadonlyArray<readonly [string, string]>; selected: string }) {
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <select id={props.id} name={props.name}>
        {props.options.map(([value, text]) => (
          <option value={value} selected={props.selected === value}>
            {text}
          </option>
        ))}
      </select>
    </div>
  );
}

export function WindowField(props: { id: string; preset: string }) {
  return <SelectField id={props.id} name="window" label="Window" options={WINDOWS.map(([k, label]) => [k, label] as const)} selected={props.preset} />;
}
