// Answers name files by the variable that configures their directory (`ZT_POLICY_PATH/a.yaml`,
// `ZT_DATA_DIR/policies/b.yaml`), never by the host's layout: the log has the full paths.
import { sep } from "node:path";

export interface PathRoots {
  /** ZT_POLICY_PATH (a directory or a single file), absolute. */
  readonly policyPath: string;
  /** ZT_DATA_DIR, absolute. */
  readonly dataDir: string;
}

/** Rewrites every occurrence of a configured root in `text`; other text is left as it is. */
export function pathHider(roots: PathRoots): (text: string) => string {
  // The longer root first: one may lie inside the other.
  const pairs = [
    [roots.policyPath, "ZT_POLICY_PATH"],
    [roots.dataDir, "ZT_DATA_DIR"],
  ].sort((a, b) => b[0]!.length - a[0]!.length) as Array<[string, string]>;
  return (text) => {
    let out = text;
    for (const [root, name] of pairs) {
      if (root === "" || root === sep) continue;
      out = out.split(root).join(name);
    }
    return out;
  };
}
