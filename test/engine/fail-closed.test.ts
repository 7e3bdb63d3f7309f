// A policy module that traps must not take the engine down: the decision is a DENY with
// reason internal_error (fail closed), counted, and the next request is evaluated normally.
// The trapping module is a real Wasm module built here with binaryen (shipped with
// AssemblyScript); it traps on port 666 and otherwise answers "default deny".
import binaryen from "binaryen";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { evaluateItems, finishDecisions, type DecideDeps } from "../../host/engine/decide.js";
import { type EvaluateItem, parseEvaluateItem } from "../../host/engine/evaluate-input.js";
import { IncidentStore } from "../../host/engine/incidents.js";
import { silentLogger } from "../../host/common/logger.js";
import { MetricLabels } from "../../host/metrics/labels.js";
import { createMetrics } from "../../host/metrics/metrics.js";
import type { ActivePolicies } from "../../host/engine/policy-store.js";
import { PolicyRuntime } from "../../host/engine/runtime.js";
import { splitSet } from "../../host/engine/set-transfer.js";
import { H, op, svc } from "../http/harness.js";
import { JsonlAuditSink } from "../http/jsonl-sink.js";
import { parseMetrics, value } from "../metrics/metrics-text.js";

const WAT = `(module
  (memory (export "memory") 2)
  (func (export "_initialize"))
  (func (export "zt_io") (result i32) (i32.const 4096))
  (func (export "zt_ready") (result i32) (i32.const 1))
  (func (export "zt_eval_service") (param i32 i32 i32) (result i32)
    (if (i32.eq (local.get 2) (i32.const 666)) (then (unreachable)))
    (i32.const 2))
  (func (export "zt_eval_operator") (param i32 i32) (result i32) (unreachable))
  (func (export "zt_eval_rollout") (param i32) (result i32) (i32.const 0))
  (func (export "zt_rule_count") (result i32) (i32.const 0))
  (func (export "zt_rule_id_ptr") (param i32) (result i32) (i32.const 0))
  (func (export "zt_rule_id_len") (param i32) (result i32) (i32.const 0)))`;

function trappingModule(): Uint8Array {
  const mod = binaryen.parseText(WAT);
  const manifest = { format: 0, generator: "test", evaluator_sha256: "", image_sha256: "", policies: [], rules: 0, stats: {} };
  mod.addCustomSection("zt.manifest", new TextEncoder().encode(JSON.stringify(manifest)));
  const bytes = mod.emitBinary();
  mod.dispose();
  return bytes;
}

let active: ActivePolicies;
let dir: string;
let deps: DecideDeps;
let sink: JsonlAuditSink;
const metrics = createMetrics({ processMetrics: false });

beforeAll(async () => {
  const wasm = trappingModule();
  const runtime = await PolicyRuntime.load(wasm);
  active = { runtime, version: runtime.version, wasm, wasmSha256: runtime.version.slice(7), manifest: runtime.manifest, set: { policies: [] }, setPieces: splitSet({ policies: [] }), policies: [], shadowed: [], labels: new MetricLabels({ policies: [] }), loadedAt: new Date().toISOString(), generation: 1 };
  dir = mkdtempSync(join(tmpdir(), "zt-trap-"));
  sink = new JsonlAuditSink(join(dir, "audit.jsonl"));
  deps = { sink, incidents: new IncidentStore(), metrics, log: silentLogger, mode: "enforce", origin: "engine" };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function items(...bodies: unknown[]): EvaluateItem[] {
  return bodies.map((b, i) => {
    const it = parseEvaluateItem(b, i);
    if (it.kind === "error") throw new Error(it.message);
    return it;
  });
}

function decide(list: EvaluateItem[], d: DecideDeps = deps) {
  const now = Date.now();
  return finishDecisions(active, list, evaluateItems(active, list, d, now), 1, null, d, now);
}

describe("fail closed on a module trap", () => {
  it("turns a trap into DENY internal_error, audited and counted, and keeps serving", async () => {
    const [trapped] = decide(items(svc("chat", "postgres", 666)));
    expect(trapped).toMatchObject({ decision: "DENY", enforced: true, reason: "internal_error", policy_matched: null, policy_version: active.version });
    expect(sink.records().find((r) => r.decision_id === trapped!.decision_id)).toMatchObject({ decision: "DENY", reason: "internal_error" });
    const [next] = decide(items(svc("chat", "postgres", 5432)));
    expect(next).toMatchObject({ decision: "DENY", reason: "default_deny" });
    const { samples } = parseMetrics(await metrics.registry.metrics());
    expect(value(samples, "zt_evaluation_errors_total", { kind: "module_trap" })).toBe(1);
  });

  it("isolates the trapping request of a batch", () => {
    const out = decide(items(svc("a", "b", 1), svc("a", "b", 666), svc("a", "b", 2), op(["sre"], "x", "y")));
    expect(out.map((d) => d.reason)).toEqual(["default_deny", "internal_error", "default_deny", "internal_error"]);
    expect(out.every((d) => d.decision === "DENY")).toBe(true);
  });

  it("observe mode still reports the DENY, not enforced", () => {
    const [d] = decide(items({ source: { spiffe_id: H + "a" }, destination: { spiffe_id: H + "b", port: 666 } }), { ...deps, mode: "observe" });
    expect(d).toMatchObject({ decision: "DENY", enforced: false, reason: "internal_error" });
  });
});
