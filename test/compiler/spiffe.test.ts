// SPIFFE IDs and patterns by the SPIFFE ID spec.
import { describe, expect, it } from "vitest";
import { parseSpiffeId, parseSpiffePattern, patternMatches, workloadParts } from "../../compiler/spiffe.js";

describe("parseSpiffeId", () => {
  it.each([
    "spiffe://hanzo.ai/hanzo-k8s/hanzo/iam",
    "spiffe://hanzo.ai/ci/github-actions/deploy",
    "spiffe://example.org",
    "spiffe://a_b-c.d/A.b_C-9",
  ])("accepts %s", (id) => {
    expect(parseSpiffeId(id).ok).toBe(true);
  });

  it.each([
    ["", "empty"],
    ["http://hanzo.ai/x", 'must start with "spiffe://"'],
    ["SPIFFE://hanzo.ai/x", "scheme must be lowercase"],
    ["spiffe:///x", "trust domain is missing"],
    ["spiffe://Hanzo.ai/x", "lowercase"],
    ["spiffe://hanzo.ai:8080/x", "port"],
    ["spiffe://user@hanzo.ai/x", "user info"],
    ["spiffe://hanzo.ai/x/", "must not end with a slash"],
    ["spiffe://hanzo.ai/", "must not end with a slash"],
    ["spiffe://hanzo.ai//x", "empty segment"],
    ["spiffe://hanzo.ai/./x", '"." is not allowed'],
    ["spiffe://hanzo.ai/x/..", '".." is not allowed'],
    ["spiffe://hanzo.ai/x%41", "percent-encoded"],
    ["spiffe://hanzo.ai/x?y=1", "query or fragment"],
    ["spiffe://hanzo.ai/x#y", "query or fragment"],
    ["spiffe://hanzo.ai/x y", "invalid character"],
    ["spiffe://" + "a".repeat(256) + "/x", "longer than 255"],
    ["spiffe://a/" + "x".repeat(2048), "longer than 2048"],
  ])("rejects %j (%s)", (id, why) => {
    const r = parseSpiffeId(id);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(why);
  });
});

describe("SPIFFE patterns", () => {
  const id = (s: string) => {
    const r = parseSpiffeId(s);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  const pat = (s: string) => {
    const r = parseSpiffePattern(s);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  it("* matches exactly one segment", () => {
    expect(patternMatches(pat("spiffe://h.ai/c/*/iam"), id("spiffe://h.ai/c/hanzo/iam"))).toBe(true);
    expect(patternMatches(pat("spiffe://h.ai/c/*/iam"), id("spiffe://h.ai/c/a/b/iam"))).toBe(false);
    expect(patternMatches(pat("spiffe://h.ai/c/*"), id("spiffe://h.ai/c"))).toBe(false);
  });
  it("** matches one or more trailing segments", () => {
    expect(patternMatches(pat("spiffe://h.ai/c/**"), id("spiffe://h.ai/c/a"))).toBe(true);
    expect(patternMatches(pat("spiffe://h.ai/c/**"), id("spiffe://h.ai/c/a/b/c"))).toBe(true);
    expect(patternMatches(pat("spiffe://h.ai/c/**"), id("spiffe://h.ai/c"))).toBe(false);
    expect(patternMatches(pat("spiffe://h.ai/**"), id("spiffe://other.ai/c"))).toBe(false);
  });
  it.each([
    ["spiffe://*.ai/x", "trust domain of a SPIFFE pattern is always literal"],
    ["spiffe://h.ai/**/x", "only allowed as the last path segment"],
    ["spiffe://h.ai/a*", "whole path segment"],
  ])("rejects %s", (p, why) => {
    const r = parseSpiffePattern(p);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(why);
  });
  it("splits the seed's workload layout", () => {
    expect(workloadParts(id("spiffe://hanzo.ai/hanzo-k8s/hanzo/iam"))).toEqual({ cluster: "hanzo-k8s", namespace: "hanzo", serviceAccount: "iam" });
    expect(workloadParts(id("spiffe://hanzo.ai/iam"))).toBeNull();
  });
});
