// The kinds of document that may sit beside policies (in the same directories and files) but
// are not policies: the policy loader sets them aside and the engine never compiles them;
// `zt check` validates each with its kind's validator (companions.ts). Add a kind here and its
// validator there.
export const COMPANION_KINDS: readonly string[] = ["PolicyTest", "WireGuardMesh", "AccessRoute"];
