// YAML with line numbers and highlighting (yaml-tokens.ts); a scrollable region that can take
// keyboard focus.
import { highlightYaml } from "../yaml-tokens.js";

export function YamlView(props: { source: string; label: string }) {
  const lines = highlightYaml(props.source);
  return (
    <pre class="code" tabindex={0} aria-label={props.label}>
      <code>
        {lines.map((line, i) => (
          <>
            <span class="ln" aria-hidden="true">
              {i + 1}
            </span>
            {line.map((p) => (p.cls === null ? p.text : <span class={`tok-${p.cls}`}>{p.text}</span>))}
            {"\n"}
          </>
        ))}
      </code>
    </pre>
  );
}
