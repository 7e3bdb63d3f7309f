// Which policy action an HTTP request through a route asks for: the route's rules in order,
// the first whose methods and path both match; then the defaults (reads -> read, else write).
import { DEFAULT_ACTIONS, type ActionRule, type HttpRoute } from "./model.js";
import { globSegments, matchSegments } from "./path-glob.js";

export interface ActionMatcher {
  /** `segments`: the normalised, decoded path below the route's prefix handling, split after the leading "/". */
  action(method: string, segments: readonly string[]): string;
}

interface Compiled {
  readonly methods: ReadonlySet<string> | null;
  readonly glob: readonly string[] | null;
  readonly action: string;
}

function compile(rules: readonly Omit<ActionRule, "at">[]): Compiled[] {
  return rules.map((r) => ({ methods: r.methods ? new Set(r.methods) : null, glob: r.path === null ? null : globSegments(r.path), action: r.action }));
}

export function actionMatcher(route: Pick<HttpRoute, "actions">): ActionMatcher {
  const rules = compile([...route.actions, ...DEFAULT_ACTIONS]);
  return {
    action(method, segments) {
      for (const r of rules) {
        if (r.methods !== null && !r.methods.has(method)) continue;
        if (r.glob !== null && !matchSegments(r.glob, segments)) continue;
        return r.action;
      }
      return "write"; // unreachable: the last default matches everything
    },
  };
}
