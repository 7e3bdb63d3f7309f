// Validators of the companion kinds (companion-kinds.ts), one per kind, each in the folder of
// the stage that owns the kind. `zt check` runs them on every companion document it loads.
import type { Diagnostic } from "./diagnostics.js";
import { validateMesh } from "./mesh/parse.js";
import type { CompanionDocument } from "./parse.js";
import { ACCESS_ROUTE_KIND } from "./access-route/model.js";
import { checkRouteSet, parseAccessRoute, validateAccessRoute } from "./access-route/validate.js";
import { validatePolicyTest } from "./policy-test/parse.js";

export type CompanionValidator = (doc: CompanionDocument) => Diagnostic[];

const VALIDATORS: Readonly<Record<string, CompanionValidator>> = {
  PolicyTest: validatePolicyTest,
  WireGuardMesh: validateMesh,
  [ACCESS_ROUTE_KIND]: validateAccessRoute,
};

/** Rules across the documents of one kind (e.g. two routes for the same host), run after each document's own. */
const SET_VALIDATORS: Readonly<Record<string, (docs: readonly CompanionDocument[]) => Diagnostic[]>> = {
  [ACCESS_ROUTE_KIND]: (docs) => checkRouteSet(docs.flatMap((d) => parseAccessRoute(d).route ?? [])),
};

/** Every problem of one companion document, as file:line:col diagnostics. */
export function validateCompanion(doc: CompanionDocument): Diagnostic[] {
  const validate = VALIDATORS[doc.kind];
  if (!validate) return [{ file: doc.file, line: 1, col: 1, message: `no validator for kind "${doc.kind}" in this build` }];
  return validate(doc);
}

/** Every problem of a set of companion documents: each document's, then those across documents of a kind. */
export function validateCompanions(docs: readonly CompanionDocument[]): Diagnostic[] {
  const own = docs.flatMap(validateCompanion);
  if (own.length > 0) return own;
  const out: Diagnostic[] = [];
  for (const [kind, check] of Object.entries(SET_VALIDATORS)) out.push(...check(docs.filter((d) => d.kind === kind)));
  return out;
}
