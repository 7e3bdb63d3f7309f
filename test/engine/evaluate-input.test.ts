// Error messages never recurse over client data (issue 22, finding 3): a value nested far
// deeper than any stack (built here without JSON, so no parser bound stands in front of the
// validator) is described by its type, never stringified.
import { describe, expect, it } from "vitest";
import { parseEvaluateItem } from "../../host/engine/evaluate-input.js";

const H = "spiffe://hanzo.ai/hanzo-k8s/hanzo/";

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("parseEvaluateItem on deeply nested values", () => {
  const deep = nested(200_000);
  it("a service request's port", () => {
    const r = parseEvaluateItem({ source: { spiffe_id: H + "gateway" }, destination: { spiffe_id: H + "postgres", port: deep } }, 3);
    expect(r).toMatchObject({ kind: "error", path: "$[3].destination.port" });
    expect((r as { message: string }).message).toMatch(/got an array$/);
  });
  it("an agent request's port", () => {
    const r = parseEvaluateItem({ agent: { token: "a.b.c" }, destination: { spiffe_id: H + "postgres", port: deep } }, -1);
    expect(r).toMatchObject({ kind: "error", path: "$.destination.port" });
  });
  it("numbers and strings are quoted briefly", () => {
    const huge = parseEvaluateItem({ source: { spiffe_id: H + "gateway" }, destination: { spiffe_id: H + "postgres", port: Number.POSITIVE_INFINITY } }, -1);
    expect((huge as { message: string }).message).toMatch(/got Infinity$/);
    const text = parseEvaluateItem({ source: { spiffe_id: H + "gateway" }, destination: { spiffe_id: H + "postgres", port: "x".repeat(10_000) } }, -1);
    expect((text as { message: string }).message.length).toBeLessThan(200);
  });
});
