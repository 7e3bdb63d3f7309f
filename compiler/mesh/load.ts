// A mesh file -> the one WireGuardMesh document in it (validated), or every error at once.
// The file may hold other documents (policies) beside it, as `zt check` allows.
import { readFile } from "node:fs/promises";
import type { Diagnostic } from "../diagnostics.js";
import { parsePolicyText } from "../parse.js";
import type { WireGuardMesh } from "./model.js";
import { MESH_KIND, parseMesh } from "./parse.js";

export type MeshLoad = { ok: true; mesh: WireGuardMesh; text: string } | { ok: false; errors: Diagnostic[] };

/** Parses `text` (the content of `file`) and picks its mesh document (by metadata.name when several). */
export function meshFromText(text: string, file: string, name?: string): MeshLoad {
  const r = parsePolicyText(text, file);
  if (!r.ok) return r;
  const docs = r.companions.filter((c) => c.kind === MESH_KIND);
  const errors: Diagnostic[] = [];
  const meshes: WireGuardMesh[] = [];
  for (const d of docs) {
    const m = parseMesh(d);
    if (m.ok) meshes.push(m.mesh);
    else errors.push(...m.errors);
  }
  if (errors.length > 0) return { ok: false, errors };
  const picked = name === undefined ? meshes : meshes.filter((m) => m.name === name);
  if (picked.length === 1) return { ok: true, mesh: picked[0]!, text };
  const what = name === undefined ? `a ${MESH_KIND} document` : `the ${MESH_KIND} document "${name}"`;
  const message = picked.length === 0 ? `no ${what} in this file` : `${picked.length} ${MESH_KIND} documents in this file: choose one by name (${meshes.map((m) => m.name).join(", ")})`;
  return { ok: false, errors: [{ file, line: 1, col: 1, message }] };
}

export async function loadMeshFile(file: string, name?: string): Promise<MeshLoad> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    return { ok: false, errors: [{ file, line: 1, col: 1, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }] };
  }
  return meshFromText(text, file, name);
}
