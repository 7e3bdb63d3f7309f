// The refusal of inline secrets: a WireGuardMesh document is public (it lives in Git and in a
// ConfigMap), so key material may appear in it only as a cluster's publicKey. Two checks:
// a field named like a secret key anywhere in the tree, and key-shaped text anywhere in the
// document's text, comments included. Findings never quote the text they found.
import { isMap, isScalar, isSeq, type Node } from "yaml";
import type { Diagnostic } from "../diagnostics.js";
import type { CompanionDocument } from "../parse.js";
import { keyShapedRanges, SECRET_FIELD } from "./keys.js";

const ADVICE = "reference the private key with privateKeyFile (a file mounted from a KMS-backed Secret); it must never be in Git or a ConfigMap";

function secretFields(doc: CompanionDocument, node: Node | null, path: string, out: Diagnostic[]): void {
  if (node && isMap(node)) {
    for (const pair of node.items) {
      const key = pair.key as Node;
      const name = isScalar(key) ? String(key.value) : "";
      const here = path ? `${path}.${name}` : name;
      if (SECRET_FIELD.test(name)) {
        const at = doc.ctx.at(key);
        out.push({ ...at, message: `inline private key refused: "${here}" would hold a secret key in the document; ${ADVICE}` });
      }
      secretFields(doc, pair.value as Node | null, here, out);
    }
  } else if (node && isSeq(node)) {
    node.items.forEach((item, i) => secretFields(doc, item as Node, `${path}[${i}]`, out));
  }
}

/** Every inline secret of the document; `publicKeys` are the value nodes allowed to hold a key. */
export function secretFindings(doc: CompanionDocument, publicKeys: readonly Node[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  secretFields(doc, doc.root, "", out);
  const allowed = publicKeys.map((n) => n.range).filter((r): r is NonNullable<Node["range"]> => r != null);
  for (const [start, end] of keyShapedRanges(doc.text, doc.span[0], doc.span[1])) {
    if (allowed.some(([s, , e]) => start >= s && end <= e)) continue;
    out.push({ ...doc.ctx.atOffset(start), message: `inline private key refused: key material (a 32-byte key in base64 or hex) outside a publicKey field; ${ADVICE}` });
  }
  return out;
}
