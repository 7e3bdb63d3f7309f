// Reason codes of the evaluator result (compiler/model.ts Reason / REASON_NAMES) as the
// strings the audit trail and the 403 response carry.
export function reasonName(code: i32): string {
  switch (code) {
    case 0:
      return "allowed_by_rule";
    case 1:
      return "denied_by_rule";
    case 2:
      return "default_deny";
    case 3:
      return "undeclared_service";
    case 4:
      return "condition_failed:requireMFA";
    case 5:
      return "condition_failed:requireIncident";
    case 6:
      return "invalid_request";
    case 7:
      return "role_undeclared";
    default:
      return "internal_error";
  }
}

export const REASON_ALLOWED_BY_RULE: i32 = 0;
export const REASON_SOURCE_UNDECLARED: i32 = 3;
export const REASON_INTERNAL_ERROR: i32 = 8;
