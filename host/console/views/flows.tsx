// Flows (source, destination, port) with their decision counts, as the graph aggregates them
// (host/audit/graph.ts): the graph's edge table and the rollout page's would-be denials.
import type { GraphEdge } from "../../audit/graph.js";
import { HeadRow, Time } from "./parts.js";

export function FlowTable(props: { flows: readonly GraphEdge[]; caption: string; testid: string; href: (e: GraphEdge) => string; label: string }) {
  return (
    <table data-testid={props.testid}>
      <caption>{props.caption}</caption>
      <HeadRow cols={["Source", "Destination", ["Port", "num"], ["Allow", "num"], ["Deny", "num"], ["Observed deny", "num"], "First seen", "Last seen", "Decisions"]} />
      <tbody>
        {props.flows.map((e) => (
          <tr>
            <td class="wrap">
              <code>{e.source}</code>
            </td>
            <td class="wrap">
              <code>{e.destination}</code>
            </td>
            <td class="num">{e.port}</td>
            <td class="num">{e.allow}</td>
            <td class="num">{e.deny}</td>
            <td class="num">{e.observed_deny}</td>
            <td>
              <Time iso={e.first_seen} />
            </td>
            <td>
              <Time iso={e.last_seen} />
            </td>
            <td>
              <a href={props.href(e)} aria-label={`${props.label} from ${e.source} to ${e.destination} port ${e.port}`}>
                {props.label}
              </a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
