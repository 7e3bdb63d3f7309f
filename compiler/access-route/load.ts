// Route files and directories -> the validated route set of the operator access proxy, or every
// error at once (file:line:col). Routes may sit beside policies: other kinds are skipped here.
import { type Diagnostic, sortDiagnostics } from "../diagnostics.js";
import { readPolicyTexts } from "../load.js";
import { parsePolicyText } from "../parse.js";
import { ACCESS_ROUTE_KIND, type AccessRoute } from "./model.js";
import { checkRouteSet, parseAccessRoute } from "./validate.js";

export type RouteSetOutcome = { ok: true; routes: AccessRoute[]; files: string[] } | { ok: false; errors: Diagnostic[] };

/** Routes of already-read files (text by file name), validated as one set. */
export function parseRouteSet(texts: ReadonlyMap<string, string>): RouteSetOutcome {
  const errors: Diagnostic[] = [];
  const routes: AccessRoute[] = [];
  for (const [file, text] of texts) {
    const r = parsePolicyText(text, file);
    if (!r.ok) {
      errors.push(...r.errors);
      continue;
    }
    for (const doc of r.companions) {
      if (doc.kind !== ACCESS_ROUTE_KIND) continue;
      const out = parseAccessRoute(doc);
      errors.push(...out.errors);
      if (out.route) routes.push(out.route);
    }
  }
  errors.push(...checkRouteSet(routes));
  if (errors.length > 0) return { ok: false, errors: sortDiagnostics(errors) };
  return { ok: true, routes, files: [...texts.keys()] };
}

export async function loadRouteSet(paths: readonly string[]): Promise<RouteSetOutcome> {
  const read = await readPolicyTexts(paths);
  return read.ok ? parseRouteSet(read.texts) : read;
}
