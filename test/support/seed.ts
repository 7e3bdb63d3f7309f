// The seed's shipped policies, compiled once per test file.
import { fileURLToPath } from "node:url";
import { compilePolicySet, type CompiledModule } from "../../compiler/compile.js";
import { loadPolicyFiles } from "../../compiler/load.js";
import type { PolicySet } from "../../compiler/model.js";

export const POLICIES_DIR = fileURLToPath(new URL("../../policies", import.meta.url));
export const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";

export async function seedSet(): Promise<PolicySet> {
  const r = await loadPolicyFiles([POLICIES_DIR]);
  if (!r.ok) throw new Error(`shipped policies do not load: ${JSON.stringify(r.errors)}`);
  return r.set;
}

export async function seedModule(): Promise<{ set: PolicySet; module: CompiledModule }> {
  const set = await seedSet();
  return { set, module: compilePolicySet(set) };
}
