// Links a policy image into the evaluator compiled once from assembly/: no AssemblyScript
// compiler runs per policy. The image becomes an active data segment after the evaluator's
// heap base (plus a gap for start-up allocations), a link header at a fixed low address
// tells the evaluator where it is, and the memory's initial size grows to hold it.
import * as L from "../assembly/layout.js";
import { concat, customSection, dataSegments, joinSections, Reader, s32leb, SECTION, type Section, splitSections, u32leb } from "./wasm/binary.js";

export const MANIFEST_SECTION = "zt.manifest";
const PAGE = 65536;
/** The AssemblyScript `memoryBase` (asconfig.json): addresses below it are ours. */
const MEMORY_BASE = 1024;
/** Room for the evaluator's buffers (I/O, segment tables, arena) after the image. */
const HEADROOM = 4 * PAGE;

interface DataInfo {
  count: number;
  body: Uint8Array;
  staticEnd: number;
}

function readData(payload: Uint8Array | undefined): DataInfo {
  if (!payload) return { count: 0, body: new Uint8Array(0), staticEnd: MEMORY_BASE };
  const r = new Reader(payload);
  r.u32();
  let staticEnd = MEMORY_BASE;
  const segments = dataSegments(payload);
  for (const seg of segments) if (seg.offset !== null) staticEnd = Math.max(staticEnd, seg.offset + seg.bytes.length);
  return { count: segments.length, body: payload.subarray(r.pos), staticEnd };
}

function activeSegment(offset: number, bytes: Uint8Array): Uint8Array {
  return concat([[0x00, 0x41, ...s32leb(offset), 0x0b, ...u32leb(bytes.length)], bytes]);
}

function memorySection(payload: Uint8Array, minPages: number): Uint8Array {
  const r = new Reader(payload);
  if (r.u32() !== 1) throw new Error("evaluator must define exactly one memory");
  const flags = r.byte();
  r.u32();
  if (flags & 1) {
    const max = r.u32();
    if (max < minPages) throw new Error(`policy image needs ${minPages} pages but the evaluator's memory maximum is ${max}`);
    return Uint8Array.from([1, flags, ...u32leb(minPages), ...u32leb(max)]);
  }
  return Uint8Array.from([1, flags, ...u32leb(minPages)]);
}

export interface LinkResult {
  wasm: Uint8Array<ArrayBuffer>;
  imagePtr: number;
}

export function linkModule(evaluator: Uint8Array, image: Uint8Array, manifest: Uint8Array): LinkResult {
  const sections = splitSections(evaluator).filter((s) => !(s.id === SECTION.custom && new Reader(s.payload).name() === MANIFEST_SECTION));
  const dataIdx = sections.findIndex((s) => s.id === SECTION.data);
  const data = readData(dataIdx >= 0 ? sections[dataIdx]!.payload : undefined);
  const imagePtr = Math.ceil(data.staticEnd / 16) * 16 + L.IMAGE_GAP;
  const minPages = Math.ceil((imagePtr + image.length + HEADROOM) / PAGE);

  const header = new Uint8Array(L.LINK_HEADER_SIZE);
  const dv = new DataView(header.buffer);
  dv.setUint32(L.LH_MAGIC, L.LINK_MAGIC, true);
  dv.setUint32(L.LH_IMAGE_PTR, imagePtr, true);
  dv.setUint32(L.LH_IMAGE_LEN, image.length, true);

  const newData: Section = {
    id: SECTION.data,
    payload: concat([u32leb(data.count + 2), data.body, activeSegment(L.LINK_HEADER_ADDR, header), activeSegment(imagePtr, image)]),
  };
  const out: Section[] = [];
  let placed = false;
  for (const s of sections) {
    if (s.id === SECTION.memory) out.push({ id: s.id, payload: memorySection(s.payload, minPages) });
    else if (s.id === SECTION.dataCount) out.push({ id: s.id, payload: Uint8Array.from(u32leb(data.count + 2)) });
    else if (s.id === SECTION.data) {
      out.push(newData);
      placed = true;
    } else out.push(s);
  }
  if (!placed) {
    // The data section follows the code section (and precedes trailing custom sections).
    const codeIdx = out.findIndex((s) => s.id === SECTION.code);
    out.splice(codeIdx + 1, 0, newData);
  }
  out.push(customSection(MANIFEST_SECTION, manifest));
  return { wasm: joinSections(out), imagePtr };
}
