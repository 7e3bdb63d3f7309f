// YAML syntax highlighting, done on the server with the lexer of the `yaml` package (the
// same library that parses the policies): the source is split into classified pieces, line
// by line, whose texts put together are exactly the source. No highlighter runs in the browser.
import { CST, Lexer } from "yaml";

export type TokenClass = "key" | "str" | "num" | "bool" | "comment" | "punct" | "anchor" | "doc" | null;

export interface Piece {
  cls: TokenClass;
  text: string;
}

const PUNCT = new Set([
  "map-value-ind",
  "seq-item-ind",
  "explicit-key-ind",
  "flow-map-start",
  "flow-map-end",
  "flow-seq-start",
  "flow-seq-end",
  "comma",
  "block-scalar-header",
]);

function scalarClass(text: string): TokenClass {
  if (/^[-+]?(\d[\d_]*)(\.\d+)?([eE][-+]?\d+)?$/.test(text) || /^0x[0-9a-fA-F]+$/.test(text)) return "num";
  if (/^(true|false|null|~|True|False|Null|TRUE|FALSE|NULL)$/.test(text)) return "bool";
  return "str";
}

/** The lines of `source`, each a list of classified pieces. */
export function highlightYaml(source: string): Piece[][] {
  const tokens = [...new Lexer().lex(source)];
  const flat: Piece[] = [];
  let scalarNext = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t === CST.SCALAR) {
      scalarNext = true;
      continue;
    }
    // Other control tokens (document mode, flow error ends) carry no source text.
    if (t.length === 1 && t.charCodeAt(0) < 0x20 && t !== "\n" && t !== "\t") continue;
    const type = CST.tokenType(t);
    let cls: TokenClass = null;
    if (scalarNext || type === "single-quoted-scalar" || type === "double-quoted-scalar") {
      // A scalar is a key when the next token that is not a space is the ':' indicator.
      let j = i + 1;
      while (j < tokens.length && CST.tokenType(tokens[j] as string) === "space") j++;
      const isKey = CST.tokenType((tokens[j] as string | undefined) ?? "") === "map-value-ind";
      cls = isKey ? "key" : scalarNext && type !== "single-quoted-scalar" && type !== "double-quoted-scalar" ? scalarClass(t.trim()) : "str";
      scalarNext = false;
    } else if (type === "comment") cls = "comment";
    else if (type === "doc-start" || type === "doc-end" || type === "directive-line") cls = "doc";
    else if (type === "anchor" || type === "alias" || type === "tag") cls = "anchor";
    else if (type !== null && PUNCT.has(type)) cls = "punct";
    flat.push({ cls, text: t });
  }
  if (flat.map((p) => p.text).join("") !== source) return source.split("\n").map((l) => [{ cls: null, text: l }]);
  const lines: Piece[][] = [[]];
  for (const p of flat) {
    const parts = p.text.split("\n");
    parts.forEach((part, k) => {
      if (k > 0) lines.push([]);
      if (part !== "") (lines[lines.length - 1] as Piece[]).push({ cls: p.cls, text: part });
    });
  }
  // A final newline ends the last line rather than opening an empty one.
  if (source.endsWith("\n") && (lines[lines.length - 1] as Piece[]).length === 0) lines.pop();
  return lines;
}
