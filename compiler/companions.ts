// Validators of the companion kinds (companion-kinds.ts), one per kind, each in the folder of
// the stage that owns the kind. `zt check` runs them on every companion document it loads.
import type { Diagnostic } from "./diagnostics.js";
import { validateMesh } from "./mesh/parse.js";
import type { CompanionDocument } from "./parse.js";
import { validatePolicyTest } from "./policy-test/parse.js";

export type CompanionValidator = (doc: CompanionDocument) => Diagnostic[];

const VALIDATORS: Readonly<Record<string, CompanionValidator>> = {
  PolicyTest: validatePolicyTest,
  WireGuardMesh: validateMesh,
};

/** Every problem of one companion document, as file:line:col diagnostics. */
export function validateCompanion(doc: CompanionDocument): Diagnostic[] {
  const validate = VALIDATORS[doc.kind];
  if (!validate) return [{ file: doc.file, line: 1, col: 1, message: `no validator for kind "${doc.kind}" in this build` }];
  return validate(doc);
}
