// Bounds on a JSON body, checked in one pass over its bytes before JSON.parse sees it: how
// deep arrays and objects nest, how long a string is, how many elements a top-level array
// (a batch) has and how many values one element holds. JSON.parse itself has no such bounds:
// '[' two million times costs it seconds and hundreds of megabytes before it fails. The pass
// stops at the first byte past a bound, so a hostile body costs what it took to reach it.
// Strings are skipped with Buffer.indexOf (memchr), so a normal body costs little more than
// reading it. Syntax is left to JSON.parse; the pass only checks what it must to be correct
// about the structure (balanced brackets, nothing after the value) and, for a top-level
// array, records where its elements begin and end so it can be parsed in slices.

export interface JsonBounds {
  /** Deepest nesting of arrays and objects (`[[1]]` is 2). */
  readonly maxDepth: number;
  /** Longest string, in bytes between its quotes (escapes counted as written). */
  readonly maxStringBytes: number;
  /** Most elements of a top-level array. */
  readonly maxItems: number;
  /** Most values (containers and separated members) in one element of a top-level array, or in a body that is not an array. */
  readonly maxValuesPerItem: number;
}

export type JsonBoundCode = "json_too_deep" | "json_string_too_long" | "json_too_many_items" | "json_item_too_large" | "invalid_json";

export interface JsonBoundError {
  readonly ok: false;
  readonly code: JsonBoundCode;
  /** Byte offset in the body where the bound was passed. */
  readonly offset: number;
  /** `$`, or `$[i]` for an element of a top-level array. */
  readonly path: string;
  readonly message: string;
}

export interface JsonShape {
  readonly ok: true;
  /**
   * For a top-level array: the offsets of its "[", of each "," between its elements and of its
   * "]" (element i lies strictly between separators[i] and separators[i + 1]); null otherwise.
   */
  readonly separators: Int32Array | null;
  /** Elements of the top-level array (0 for `[]`), or 1 for any other value. */
  readonly items: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function fail(code: JsonBoundCode, offset: number, path: string, message: string): JsonBoundError {
  return { ok: false, code, offset, path, message };
}

/** Index of the quote closing the string opened at `open`, or -1 if it is not closed. */
function closingQuote(b: Buffer, open: number): number {
  // Short strings (most of them) are walked here; a native search call costs more than that.
  const n = b.length;
  const stop = Math.min(n, open + 64);
  let j = open + 1;
  for (; j < stop; j++) {
    const c = b[j]!;
    if (c === QUOTE) return j;
    if (c === BACKSLASH) j++;
  }
  if (j >= n) return -1;
  // A long string: search natively (memchr), skipping quotes that are escaped.
  for (;;) {
    const q = b.indexOf(QUOTE, j);
    if (q < 0) return -1;
    // An even run of backslashes escapes itself, not the quote (the run cannot reach back past
    // the opening quote).
    let k = q - 1;
    while (b[k] === BACKSLASH) k--;
    if (((q - 1 - k) & 1) === 0) return q;
    j = q + 1;
  }
}

/** The path of the element being scanned: `$[i]` inside a top-level array, else `$`. */
function where(topArray: boolean, nSeps: number): string {
  return topArray ? `$[${nSeps - 1}]` : "$";
}

function grow(seps: Int32Array, maxItems: number): Int32Array {
  const bigger = new Int32Array(Math.min(seps.length * 2, maxItems + 2));
  bigger.set(seps);
  return bigger;
}

// One function, no closures: the loop's variables stay in registers (a closure over them
// would move them to a heap context and double the cost per byte).
export function scanJson(b: Buffer, bounds: JsonBounds): JsonShape | JsonBoundError {
  const n = b.length;
  const { maxDepth, maxStringBytes, maxItems, maxValuesPerItem } = bounds;
  let depth = 0;
  let topArray = false;
  let seps: Int32Array | null = null;
  let nSeps = 0;
  let values = 0;
  let closed = false;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (closed) {
      if (!isSpace(c)) return fail("invalid_json", i, "$", `unexpected data after the JSON value at byte ${i}`);
    } else if (c === QUOTE) {
      const end = closingQuote(b, i);
      if (end < 0) return fail("invalid_json", i, where(topArray, nSeps), `unterminated string starting at byte ${i}`);
      if (end - i - 1 > maxStringBytes) return fail("json_string_too_long", i, where(topArray, nSeps), `a string longer than ${maxStringBytes} bytes starts at byte ${i}`);
      i = end;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > maxDepth) return fail("json_too_deep", i, where(topArray, nSeps), `nesting deeper than ${maxDepth} levels at byte ${i}`);
      if (depth === 1) {
        topArray = c === 0x5b;
        if (topArray) {
          seps = new Int32Array(Math.min(1024, maxItems + 2));
          seps[nSeps++] = i;
        }
      } else if (++values > maxValuesPerItem) {
        return fail("json_item_too_large", i, where(topArray, nSeps), `more than ${maxValuesPerItem} values in one ${topArray ? "element" : "body"} at byte ${i}`);
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
      if (depth < 0) return fail("invalid_json", i, "$", `unbalanced "${String.fromCharCode(c)}" at byte ${i}`);
      if (depth === 0) {
        closed = true;
        if (topArray) {
          if (nSeps === seps!.length) seps = grow(seps!, maxItems);
          seps![nSeps++] = i;
        }
      }
    } else if (c === 0x2c) {
      if (depth === 1 && topArray) {
        if (nSeps >= maxItems) return fail("json_too_many_items", i, "$", `more than ${maxItems} elements in the array (byte ${i})`);
        if (nSeps === seps!.length) seps = grow(seps!, maxItems);
        seps![nSeps++] = i;
        values = 0;
      } else if (++values > maxValuesPerItem) {
        return fail("json_item_too_large", i, where(topArray, nSeps), `more than ${maxValuesPerItem} values in one ${topArray ? "element" : "body"} at byte ${i}`);
      }
    }
  }
  if (depth > 0) return fail("invalid_json", n, where(topArray, nSeps), "unexpected end of the body inside an array or object");
  if (!topArray) return { ok: true, separators: null, items: 1 };
  const sep = seps!.subarray(0, nSeps);
  let empty = nSeps === 2;
  for (let i = sep[0]! + 1; empty && i < sep[1]!; i++) empty = isSpace(b[i]!);
  return { ok: true, separators: sep, items: empty ? 0 : nSeps - 1 };
}
