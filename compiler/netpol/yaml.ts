// Multi-document YAML with the mirror's explanations as comments.
import { Document, isMap, isNode, isSeq } from "yaml";
import type { NetworkPolicy } from "./types.js";

export interface ObjectNotes {
  /** Comment lines above the object. */
  readonly header: readonly string[];
  /** Comment lines above spec.ingress[i] / spec.egress[i]. */
  readonly rules: ReadonlyArray<readonly string[]>;
}

function comment(lines: readonly string[]): string {
  return lines.map((l) => ` ${l}`).join("\n");
}

export function renderYaml(header: readonly string[], objects: readonly NetworkPolicy[], notes: readonly ObjectNotes[]): string {
  const parts: string[] = [header.map((l) => `# ${l}`.trimEnd()).join("\n") + "\n"];
  objects.forEach((obj, i) => {
    const doc = new Document(obj);
    const n = notes[i];
    // On the root map rather than the document: no blank line between comment and object.
    if (n && n.header.length > 0 && isNode(doc.contents)) doc.contents.commentBefore = comment(n.header);
    const spec = doc.get("spec", true);
    if (n && isMap(spec)) {
      for (const key of ["ingress", "egress"]) {
        const seq = spec.get(key, true);
        if (!isSeq(seq)) continue;
        seq.items.forEach((item, j) => {
          const lines = n.rules[j];
          if (lines && lines.length > 0 && isNode(item)) item.commentBefore = comment(lines);
        });
      }
    }
    parts.push("---\n" + doc.toString({ lineWidth: 0 }));
  });
  return parts.join("");
}
