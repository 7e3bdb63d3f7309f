// A bound on how deep a YAML (or JSON) text nests, checked before the YAML parser sees it.
// The parser recurses: a policy body of `- - - - …` or `[[[[…` a few ten thousand deep
// exhausts its stack or, worse, aborts the whole process (a fatal out-of-memory in a regular
// expression the parser builds). Well within what it handles: at most MAX_FLOW_DEPTH open
// flow collections, and block content starting at most MAX_BLOCK_COLUMN columns in (each
// block level needs at least one column of indentation or a `- ` indicator). The scan is
// conservative: brackets in plain scalars count as if they opened flow collections; quoted
// scalars and comments are skipped, a quoted scalar only up to the end of its line (so a
// stray apostrophe cannot hide the lines after it).

export const MAX_FLOW_DEPTH = 64;
export const MAX_BLOCK_COLUMN = 128;

export interface NestingError {
  line: number;
  col: number;
  message: string;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

export function yamlNestingError(text: string): NestingError | null {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  const n = text.length;
  let i = 0;
  while (i < n) {
    // Line start: indentation and compact block indicators ("- ", "? ", ": ").
    let j = i;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c === 0x20) j++;
      else if ((c === 0x2d || c === 0x3f || c === 0x3a) && (j + 1 === n || isBlank(text.charCodeAt(j + 1)) || text.charCodeAt(j + 1) === 0x0a)) j++;
      else break;
    }
    if (j - lineStart > MAX_BLOCK_COLUMN && j < n && text.charCodeAt(j) !== 0x0a && text.charCodeAt(j) !== 0x23) {
      return { line, col: j - lineStart + 1, message: `nesting too deep: content starts past column ${MAX_BLOCK_COLUMN}` };
    }
    i = j;
    let prev = 0x20;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x0a) break;
      if (c === 0x23 && isBlank(prev)) {
        while (i < n && text.charCodeAt(i) !== 0x0a) i++;
        break;
      }
      if ((c === 0x22 || c === 0x27) && (isBlank(prev) || prev === 0x5b || prev === 0x7b || prev === 0x2c || prev === 0x3a)) {
        i++;
        while (i < n) {
          const d = text.charCodeAt(i);
          if (d === 0x0a) break;
          if (c === 0x22 && d === 0x5c) i += 2;
          else if (d === c) break;
          else i++;
        }
        prev = c;
        if (i < n && text.charCodeAt(i) === c) i++;
        continue;
      }
      if (c === 0x5b || c === 0x7b) {
        if (++depth > MAX_FLOW_DEPTH) return { line, col: i - lineStart + 1, message: `nesting too deep: more than ${MAX_FLOW_DEPTH} flow collections ("[" or "{") open` };
      } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
      prev = c;
      i++;
    }
    // Past the newline: the next line.
    i++;
    line++;
    lineStart = i;
  }
  return null;
}
