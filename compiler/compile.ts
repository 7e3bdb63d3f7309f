// PolicySet -> self-describing, reproducible Wasm module. The evaluator is compiled once
// (npm run build:wasm); this step only builds the image and links it (milliseconds).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { FORMAT_VERSION } from "../assembly/layout.js";
import { buildImage, type ImageStats } from "./image.js";
import { linkModule } from "./link.js";
import type { PolicyKind, PolicySet } from "./model.js";

export const ZT_VERSION = "0.1.0";

/** The "zt.manifest" custom section: what the module holds, without reading the image. */
export interface Manifest {
  format: number;
  generator: string;
  evaluator_sha256: string;
  image_sha256: string;
  policies: Array<{ name: string; kind: PolicyKind; first_rule: number; rules: number }>;
  rules: number;
  /** Agent scope requirements (docs/policy-language.md "Agents"), in canonical order. */
  agent_scopes: Array<{ destination: string; scopes: string[] }>;
  stats: ImageStats;
}

export interface CompiledModule {
  wasm: Uint8Array<ArrayBuffer>;
  /** `sha256:<hex of the module>`: the policy version. */
  version: string;
  manifest: Manifest;
}

let evaluatorCache: Uint8Array<ArrayBuffer> | null = null;

/** The evaluator built by `npm run build:wasm` (build/evaluator.wasm at the package root). */
export function evaluatorPath(): string {
  const candidates = ["../build/evaluator.wasm", "../../build/evaluator.wasm"].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`evaluator not built: run "npm run build:wasm" (looked for ${candidates.join(", ")})`);
  return found;
}

export function loadEvaluator(): Uint8Array<ArrayBuffer> {
  evaluatorCache ??= new Uint8Array(readFileSync(evaluatorPath()));
  return evaluatorCache;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function compilePolicySet(set: PolicySet, evaluator: Uint8Array = loadEvaluator()): CompiledModule {
  const { image, stats } = buildImage(set);
  let first = 0;
  const manifest: Manifest = {
    format: FORMAT_VERSION,
    generator: `zt ${ZT_VERSION}`,
    evaluator_sha256: sha256Hex(evaluator),
    image_sha256: sha256Hex(image),
    policies: set.policies.map((p) => {
      const entry = { name: p.name, kind: p.kind, first_rule: first, rules: p.rules.length };
      first += p.rules.length;
      return entry;
    }),
    rules: first,
    agent_scopes: set.policies.flatMap((p) => (p.kind === "ServiceAccessPolicy" ? p.agentScopes.map((e) => ({ destination: e.destination.text, scopes: [...e.scopes] })) : [])),
    stats,
  };
  const { wasm } = linkModule(evaluator, image, new TextEncoder().encode(JSON.stringify(manifest)));
  return { wasm, version: `sha256:${sha256Hex(wasm)}`, manifest };
}
