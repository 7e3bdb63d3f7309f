// PolicyTest documents (`zt test`): requests with the decision the policies must give them,
// and optionally the rule and reason. Plain data, like compiler/model.ts.
import type { OperatorRequest, ServiceRequest, SourceRef } from "../model.js";

export const POLICY_TEST_KIND = "PolicyTest";

export type TestRequest = ({ kind: "service" } & ServiceRequest) | ({ kind: "operator" } & OperatorRequest);

export interface TestExpectation {
  readonly decision: "ALLOW" | "DENY";
  /** `<policy>/<rule>`, null for "no rule decided", undefined when the case does not care. */
  readonly rule?: string | null;
  /** A reason name (compiler/model.ts REASON_NAMES); undefined when the case does not care. */
  readonly reason?: string;
}

export interface TestCase {
  /** `<metadata.name>/<case name>` (unnamed cases: `case-N`, N counted from 1). */
  readonly id: string;
  readonly request: TestRequest;
  readonly expect: TestExpectation;
  readonly at: SourceRef;
  /** Where `expect.rule` is written, for an error naming a rule the policies do not have. */
  readonly ruleAt: SourceRef | null;
}

export interface PolicyTest {
  readonly name: string;
  readonly file: string;
  readonly cases: readonly TestCase[];
}
