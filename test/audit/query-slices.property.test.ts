// GET /v1/audit's shortcuts against plain references, with generated inputs: the explicit
// prefix range stated for the index (prefixRange, patternPrefix) against startsWith and the
// pattern's regex, and the time slices a page is looked for in (timeSlices) against the
// query's own window.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AuditQuery, MAX_LIMIT, patternPrefix, patternRegex, prefixRange, sqlLimit, timeSlices, unfilteredQuery } from "../../host/audit/query.js";

/** PostgreSQL's COLLATE "C" order: the strings' UTF-8 bytes. */
const byteCompare = (a: string, b: string): number => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

const query = (over: Partial<AuditQuery>): AuditQuery => ({ ...unfilteredQuery(), ...over });

describe("prefix ranges", () => {
  it("[lo, hi) in byte order holds exactly the strings that start with the prefix", () => {
    const text = fc.string({ unit: fc.constantFrom("a", "b", "/", "0", ":", ".", "-", "z", "é", "\u00ff", "~"), maxLength: 6 });
    fc.assert(
      fc.property(text.filter((s) => s.length > 0), text, text, (prefix, tail, other) => {
        const r = prefixRange(prefix);
        if (r === null) return;
        for (const s of [prefix + tail, other, prefix.slice(0, -1) + other, other + prefix]) {
          const inRange = byteCompare(s, r[0]) >= 0 && byteCompare(s, r[1]) < 0;
          expect(inRange, `${JSON.stringify(s)} vs ${JSON.stringify(prefix)}`).toBe(s.startsWith(prefix));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("every ID a SPIFFE pattern matches starts with the pattern's literal prefix", () => {
    const seg = fc.constantFrom("hanzo", "k8s", "iam", "llm", "a.b", "x-y");
    const patSeg = fc.oneof(seg, fc.constant("*"));
    fc.assert(
      fc.property(fc.array(patSeg, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.array(seg, { minLength: 1, maxLength: 6 }), (segs, globstar, idSegs) => {
        const pattern = `spiffe://hanzo.ai/${[...segs, ...(globstar ? ["**"] : [])].join("/")}`;
        if (!pattern.includes("*")) return;
        const id = `spiffe://hanzo.ai/${idSegs.join("/")}`;
        if (new RegExp(patternRegex(pattern)).test(id)) expect(id.startsWith(patternPrefix(pattern))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("time slices", () => {
  const DAY = 24 * 3600_000;
  const time = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2028, 0, 1) });

  it("are newest first, disjoint, and together exactly the query's window", () => {
    fc.assert(
      fc.property(fc.option(time), fc.option(time), fc.option(time), time, fc.array(time, { maxLength: 20 }), (since, until, cursorMs, now, probes) => {
        const q = query({
          since: since === null ? null : new Date(since),
          until: until === null ? null : new Date(until),
          cursor: cursorMs === null ? null : { tsMicros: String(cursorMs * 1000), decisionId: "00000000-0000-4000-8000-000000000000" },
        });
        const slices = timeSlices(q, new Date(now));
        for (let i = 1; i < slices.length; i++) {
          // Each slice ends where the next-older one's starts.
          expect(slices[i]!.to?.getTime()).toBe(slices[i - 1]!.from?.getTime());
        }
        const inSlices = (t: number): number => slices.filter((s) => (s.from === null || t >= s.from.getTime()) && (s.to === null || t < s.to.getTime())).length;
        const newest = Math.min(now, until ?? Infinity, cursorMs === null ? Infinity : cursorMs + 1);
        for (const t of [...probes, since ?? 0, (until ?? 0) - 1, newest - 1, newest - DAY, newest - 5 * DAY - 1, newest - 400 * DAY]) {
          const inWindow = (since === null || t >= since) && (until === null || t < until);
          // Every instant of the window is in exactly one slice, nothing outside it in any.
          expect(inSlices(t), `t=${t}`).toBe(inWindow ? 1 : 0);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("the statement's LIMIT", () => {
  it("holds the page and one more row, at most twice that, as one of few values", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_LIMIT }), (limit) => {
        const n = sqlLimit(limit);
        expect(n).toBeGreaterThan(limit);
        expect(n).toBeLessThanOrEqual(2 * (limit + 1));
        expect(Number.isInteger(Math.log2(n))).toBe(true);
      }),
    );
    const distinct = new Set(Array.from({ length: MAX_LIMIT }, (_, i) => sqlLimit(i + 1)));
    expect(distinct.size).toBeLessThanOrEqual(11);
  });
});
