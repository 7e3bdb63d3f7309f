// The set algebra under the DENY carving, against brute-force membership on a small universe
// (values outside every set stand for "any other value").
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Box, subtractBox } from "../../compiler/netpol/boxes.js";
import { type Dim, dimHas, intersectDim, intersectPorts, isEmptyDim, notIn, only, portsHave, subtractDim, subtractPorts, unionPorts } from "../../compiler/netpol/dims.js";
import { projectPattern, withCluster } from "../../compiler/netpol/project.js";
import { parseSpiffePattern } from "../../compiler/spiffe.js";

const VALUES = ["a", "b", "c", "d"];
const UNIVERSE = [...VALUES, "zz-other"];
const dimArb: fc.Arbitrary<Dim> = fc.tuple(fc.boolean(), fc.subarray(VALUES)).map(([inKind, vs]) => (inKind ? only(...vs) : notIn(vs)));
const portsArb = fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 10 })).map(([lo, w]) => ({ lo, hi: lo + w })), { maxLength: 3 });
const PORT_UNIVERSE = Array.from({ length: 52 }, (_, i) => i);

describe("dims", () => {
  it("intersect and subtract agree with membership", () => {
    fc.assert(
      fc.property(dimArb, dimArb, (a, b) => {
        for (const v of UNIVERSE) {
          expect(dimHas(intersectDim(a, b), v)).toBe(dimHas(a, v) && dimHas(b, v));
          expect(dimHas(subtractDim(a, b), v)).toBe(dimHas(a, v) && !dimHas(b, v));
        }
        expect(isEmptyDim(a)).toBe(!UNIVERSE.some((v) => dimHas(a, v)) && a.kind === "in");
      }),
      { numRuns: 500, seed: 1 },
    );
  });

  it("port ranges: intersect, subtract and union agree with membership", () => {
    fc.assert(
      fc.property(portsArb, portsArb, (a, b) => {
        for (const p of PORT_UNIVERSE) {
          expect(portsHave(intersectPorts(a, b), p)).toBe(portsHave(a, p) && portsHave(b, p));
          expect(portsHave(subtractPorts(a, b), p)).toBe(portsHave(a, p) && !portsHave(b, p));
          expect(portsHave(unionPorts(a, b), p)).toBe(portsHave(a, p) || portsHave(b, p));
        }
      }),
      { numRuns: 500, seed: 2 },
    );
  });
});

describe("boxes", () => {
  const boxArb: fc.Arbitrary<Box> = fc
    .record({ srcCluster: dimArb, dstCluster: dimArb, srcNs: dimArb, srcSa: dimArb, dstNs: dimArb, dstSa: dimArb, ports: portsArb })
    .map((b) => ({ ...b, rule: "r", origin: 0 }));
  const has = (b: Box, pt: string[], port: number): boolean =>
    dimHas(b.srcCluster, pt[0]!) && dimHas(b.dstCluster, pt[1]!) && dimHas(b.srcNs, pt[2]!) && dimHas(b.srcSa, pt[3]!) && dimHas(b.dstNs, pt[4]!) && dimHas(b.dstSa, pt[5]!) && portsHave(b.ports, port);

  it("a \\ d is exactly the points of a outside d, as disjoint boxes", () => {
    const pointArb = fc.tuple(fc.array(fc.constantFrom(...UNIVERSE), { minLength: 6, maxLength: 6 }), fc.constantFrom(...PORT_UNIVERSE));
    fc.assert(
      fc.property(boxArb, boxArb, fc.array(pointArb, { minLength: 30, maxLength: 30 }), (a, d, points) => {
        const pieces = subtractBox(a, d);
        for (const [pt, port] of points) {
          const count = pieces.filter((p) => has(p, pt, port)).length;
          expect(count).toBe(has(a, pt, port) && !has(d, pt, port) ? 1 : 0);
        }
      }),
      { numRuns: 500, seed: 3 },
    );
  });
});

describe("project", () => {
  const proj = (text: string) => {
    const p = parseSpiffePattern(text);
    if (!p.ok) throw new Error(p.error);
    return projectPattern(p.value, "hanzo.ai");
  };

  it("maps workload patterns, ** by position, and refuses what names no pod", () => {
    expect(proj("spiffe://hanzo.ai/hanzo-k8s/hanzo/iam")).toEqual({ kind: "workloads", cluster: only("hanzo-k8s"), ns: only("hanzo"), sa: only("iam"), globstar: false });
    expect(proj("spiffe://hanzo.ai/*/hanzo/*")).toEqual({ kind: "workloads", cluster: notIn([]), ns: only("hanzo"), sa: notIn([]), globstar: false });
    expect(proj("spiffe://hanzo.ai/hanzo-k8s/**")).toEqual({ kind: "workloads", cluster: only("hanzo-k8s"), ns: notIn([]), sa: notIn([]), globstar: true });
    expect(proj("spiffe://hanzo.ai/hanzo-k8s/hanzo/iam/**")).toMatchObject({ kind: "none", code: "unmappable-identity" });
    expect(proj("spiffe://hanzo.ai/hanzo-k8s/hanzo")).toMatchObject({ kind: "none", code: "unmappable-identity" });
    expect(proj("spiffe://hanzo.ai/hanzo-k8s/Hanzo_NS/iam")).toMatchObject({ kind: "none", code: "unmappable-identity" });
    expect(proj("spiffe://hanzo.ai/hanzo-k8s/hanzo/-iam")).toMatchObject({ kind: "none", code: "unmappable-identity" });
    expect(proj("spiffe://lux.network/lux-k8s/lux/validator")).toMatchObject({ kind: "none", code: "foreign-trust-domain" });
  });

  it("withCluster rewrites the cluster segment", () => {
    const p = (t: string) => {
      const r = parseSpiffePattern(t);
      if (!r.ok) throw new Error(r.error);
      return r.value;
    };
    expect(withCluster(p("spiffe://hanzo.ai/*/hanzo/iam"), "c1")).toBe("spiffe://hanzo.ai/c1/hanzo/iam");
    expect(withCluster(p("spiffe://hanzo.ai/**"), "c1")).toBe("spiffe://hanzo.ai/c1/**");
  });
});
