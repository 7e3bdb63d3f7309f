// A policy that opens two destinations to AI agents (docs/policy-language.md "Agents"), for
// the engine tests of agent requests.
import { H } from "./harness.js";

export const AGENT_POLICY = `apiVersion: zt.hanzo.ai/v1
kind: ServiceAccessPolicy
metadata:
  name: agent-access
spec:
  rules: []
  agentScopes:
    - destination: "${H}gateway"
      scopes: ["llm:invoke"]
    - destination: "${H}chat"
      scopes: ["chat:write", "llm:invoke"]
  defaultAction: DENY
`;
