// The NetworkPolicy mirror (docs/netpol.md).
export { generateNetworkPolicies } from "./generate.js";
export { netpolCommand, NETPOL_USAGE, type CommandIO } from "./command.js";
export {
  DEFAULT_INFRA_EGRESS,
  DEFAULT_NAMESPACE_LABEL,
  DEFAULT_POD_LABEL,
  formatNetpolWarning,
  netpolOptions,
  type FlowScope,
  type InfraEgress,
  type NetpolOptions,
  type NetpolResult,
  type NetpolWarning,
  type NetpolWarningCode,
  type NetworkPolicy,
} from "./types.js";
