// Path globs of AccessRoute action rules: segments separated by "/", where "*" is exactly one
// non-empty segment and a final "**" is any rest (none included: "/logs/**" matches "/logs").
// Paths are matched segment by segment after the proxy normalised them (docs/proxy.md).

/** Why a glob is invalid, or null when it is fine. */
export function globError(glob: string): string | null {
  if (!glob.startsWith("/")) return 'must start with "/"';
  const segs = glob.slice(1).split("/");
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === "**" && i !== segs.length - 1) return '"**" may only be the last segment';
    if (s !== "*" && s !== "**" && s.includes("*")) return `"${s}": "*" and "**" must be whole segments`;
    if (s === "." || s === "..") return `"${s}" segments are not allowed (paths are normalised before matching)`;
  }
  if (/[?#%\\]/.test(glob)) return 'must not contain "?", "#", "%" or "\\"';
  return null;
}

/** The glob split into segments (after the leading "/"), for matchSegments. */
export function globSegments(glob: string): readonly string[] {
  return glob.slice(1).split("/");
}

/** Does a path, split into decoded segments (after the leading "/"), match the glob's segments? */
export function matchSegments(glob: readonly string[], path: readonly string[]): boolean {
  const n = glob.length;
  const last = glob[n - 1];
  const rest = last === "**";
  const fixed = rest ? n - 1 : n;
  if (rest ? path.length < fixed : path.length !== fixed) return false;
  for (let i = 0; i < fixed; i++) {
    const g = glob[i]!;
    const p = path[i]!;
    if (g === "*" ? p.length === 0 : g !== p) return false;
  }
  return true;
}
