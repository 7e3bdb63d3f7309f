// The bounds scan (host/http/json-bounds.ts) against JSON.parse on generated JSON: it accepts
// every value JSON.parse accepts within the bounds, finds exactly the top-level elements, and
// refuses nesting past the bound at the byte where it is passed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseJsonBytes, SLICE_ITEMS } from "../../host/http/body.js";
import { scanJson } from "../../host/http/json-bounds.js";

const WIDE = { maxDepth: 64, maxStringBytes: 1 << 20, maxItems: 1 << 20, maxValuesPerItem: 1 << 20 };

function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v !== null && typeof v === "object") return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

describe("scanJson", () => {
  it("accepts what JSON.parse accepts, with strings full of escapes, and splits top-level arrays exactly", () => {
    const str = fc.string({ unit: fc.constantFrom("a", '"', "\\", "é", "\n", "[", "{", ",", "]", "}", "x"), maxLength: 200 });
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: "small" }, str, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.array(tie("v"), { maxLength: 5 }), fc.dictionary(str, tie("v"), { maxKeys: 4 })),
    })).v;
    fc.assert(
      fc.property(value, fc.boolean(), (v, pretty) => {
        const text = JSON.stringify(v, null, pretty ? 2 : undefined);
        const b = Buffer.from(text);
        const r = scanJson(b, WIDE);
        if (depthOf(v) > WIDE.maxDepth) return;
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        if (!Array.isArray(v)) {
          expect(r.separators).toBeNull();
          return;
        }
        expect(r.items).toBe(v.length);
        for (let i = 0; i < v.length; i++) expect(JSON.parse(b.toString("utf8", r.separators![i]! + 1, r.separators![i + 1]!))).toEqual(v[i]);
        // The sliced parse gives back the same array.
        const parsed = parseJsonBytes(b, WIDE);
        expect(parsed.ok).toBe(true);
        if (parsed.ok && parsed.batch) {
          const all: unknown[] = [];
          for (let k = 0; k < parsed.batch.slices; k++) {
            const s = parsed.batch.parseSlice(k);
            if (s.ok) all.push(...s.values);
          }
          expect(all).toEqual(v);
        } else if (parsed.ok) expect(parsed.value).toEqual(v);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses nesting past the bound at the byte where it is passed, whatever follows", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 5000 }), fc.constantFrom("[", '{"k":'), (bound, extra, open) => {
        const text = open.repeat(bound + 1 + extra);
        const r = scanJson(Buffer.from(text), { ...WIDE, maxDepth: bound });
        expect(r).toMatchObject({ ok: false, code: "json_too_deep", offset: open.length * bound });
      }),
    );
  });

  it("a large array is handed out in slices that parse to the same elements; a bad element is named", () => {
    const arr = Array.from({ length: 1500 }, (_, i) => ({ i, s: "x".repeat(i % 7) }));
    const good = parseJsonBytes(Buffer.from(JSON.stringify(arr)), WIDE);
    expect(good.ok && good.batch !== null && good.batch.slices).toBe(Math.ceil(1500 / SLICE_ITEMS));
    const bad = Buffer.from(JSON.stringify(arr).replace('{"i":1234,', '{"i":1234,,'));
    const r = parseJsonBytes(bad, WIDE);
    expect(r.ok && r.batch !== null).toBe(true);
    if (!r.ok || !r.batch) return;
    const slice = r.batch.parseSlice(Math.floor(1234 / SLICE_ITEMS));
    expect(slice).toMatchObject({ ok: false, code: "invalid_json", path: "$[1234]" });
  });
});
