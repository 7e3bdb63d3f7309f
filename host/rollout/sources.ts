// Where a policy set for `zt diff` (and `zt replay --candidate`) comes from: a path on disk,
// a git revision (`REV:PATH`, or a bare `REV` meaning the same path as the other operand), or
// a stored version (host/store, once the shared store holds versions). Each resolves to the
// policy texts, loaded by the same loader as `zt check`.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { relative, resolve } from "node:path";
import { promisify } from "node:util";
import { loadPolicyFiles, loadPolicyTexts, type LoadOutcome, type PolicyText } from "../../compiler/load.js";

const run = promisify(execFile);
const POLICY_FILE = /\.(ya?ml|json)$/i;

/** A source that cannot be read at all (unknown revision, no such path): a usage-level error. */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SourceError";
  }
}

/**
 * A git source's path is relative to the repository's top (git's own `REV:path`), unless it
 * starts with ./ or ../ (then, as in git, to the working directory); a bare REV takes the
 * other operand's path, which is relative to the working directory.
 */
export type SourceSpec = { kind: "path"; path: string } | { kind: "git"; rev: string; path: string; fromCwd: boolean; bare: boolean };

/** How an operand is read; `other` is the other operand of `zt diff`, for a bare revision. */
export function parseSource(operand: string, other: string | null): SourceSpec {
  const cwd = process.cwd();
  if (existsSync(resolve(cwd, operand))) return { kind: "path", path: operand };
  const colon = operand.indexOf(":");
  if (colon > 0) {
    const path = operand.slice(colon + 1) || ".";
    return { kind: "git", rev: operand.slice(0, colon), path, fromCwd: /^\.\.?(\/|$)/.test(path), bare: false };
  }
  if (other !== null && !other.includes(":") && existsSync(resolve(cwd, other))) return { kind: "git", rev: operand, path: other, fromCwd: true, bare: true };
  throw new SourceError(`"${operand}" is neither a file or directory nor a git revision written REV:PATH (e.g. main:policies)`);
}

export function describeSource(s: SourceSpec): string {
  return s.kind === "path" ? s.path : `${s.rev}:${s.path}`;
}

async function git(cwd: string, args: string[], maxBuffer = 256 * 1024 * 1024): Promise<string> {
  const { stdout } = await run("git", args, { cwd, maxBuffer, encoding: "utf8" });
  return stdout;
}

/** The policy files of a git source as they are at its revision, read from git's objects (the work tree is not touched). */
export async function gitPolicyTexts(spec: Extract<SourceSpec, { kind: "git" }>): Promise<PolicyText[]> {
  const { rev, path } = spec;
  const cwd = process.cwd();
  let top: string;
  try {
    top = (await git(cwd, ["rev-parse", "--show-toplevel"])).trim();
  } catch {
    throw new SourceError(`${rev}:${path}: ${cwd} is not inside a git repository`);
  }
  try {
    await git(cwd, ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`]);
  } catch {
    throw new SourceError(spec.bare ? `"${rev}" is neither a file or directory nor a git revision` : `unknown git revision "${rev}"`);
  }
  const rel = relative(top, resolve(spec.fromCwd ? cwd : top, path)).split("\\").join("/");
  if (rel.startsWith("..")) throw new SourceError(`${rev}:${path}: the path is outside the repository ${top}`);
  const listing = await git(top, ["ls-tree", "-r", "-z", "--full-tree", rev, "--", rel === "" ? "." : rel]);
  const blobs = listing
    .split("\0")
    .filter((l) => l.length > 0)
    .map((l) => {
      const tab = l.indexOf("\t");
      const [, type, oid] = l.slice(0, tab).split(" ");
      return { type, oid: oid!, file: l.slice(tab + 1) };
    })
    .filter((b) => b.type === "blob" && POLICY_FILE.test(b.file) && !b.file.split("/").some((seg) => seg.startsWith(".")))
    .sort((a, b) => (a.file < b.file ? -1 : 1));
  if (blobs.length === 0) throw new SourceError(`${rev}:${path}: no policy files (*.yaml, *.yml, *.json) at that revision`);
  const texts: PolicyText[] = [];
  for (const b of blobs) texts.push({ file: `${rev}:${b.file}`, text: await git(top, ["cat-file", "blob", b.oid]) });
  return texts;
}

/** Loads the policy set an operand names; throws SourceError when the source itself is missing. */
export async function loadSource(spec: SourceSpec): Promise<LoadOutcome> {
  if (spec.kind === "path") return loadPolicyFiles([spec.path]);
  return loadPolicyTexts(await gitPolicyTexts(spec));
}
