// Just enough of the WebAssembly binary format to link a policy image into the evaluator:
// split/join sections, LEB128, the memory and data sections, custom sections.
export const SECTION = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
} as const;

export interface Section {
  id: number;
  payload: Uint8Array;
}

export class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.bytes.length) throw new Error("unexpected end of wasm binary");
    return this.bytes[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new Error("LEB128 too long");
    }
  }
  s32(): number {
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      b = this.byte();
      result |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    if (shift < 32 && b & 0x40) result |= ~0 << shift;
    return result;
  }
  take(n: number): Uint8Array {
    if (this.pos + n > this.bytes.length) throw new Error("unexpected end of wasm binary");
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  name(): string {
    return new TextDecoder().decode(this.take(this.u32()));
  }
  get done(): boolean {
    return this.pos >= this.bytes.length;
  }
}

export function u32leb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

export function s32leb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const MAGIC_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

export function splitSections(wasm: Uint8Array): Section[] {
  for (let i = 0; i < 8; i++) if (wasm[i] !== MAGIC_VERSION[i]) throw new Error("not a WebAssembly 1.0 binary");
  const r = new Reader(wasm);
  r.pos = 8;
  const out: Section[] = [];
  while (!r.done) {
    const id = r.byte();
    const size = r.u32();
    out.push({ id, payload: r.take(size) });
  }
  return out;
}

export function joinSections(sections: readonly Section[]): Uint8Array<ArrayBuffer> {
  const parts: Array<Uint8Array | number[]> = [MAGIC_VERSION];
  for (const s of sections) parts.push([s.id, ...u32leb(s.payload.length)], s.payload);
  return concat(parts);
}

export function customSection(name: string, data: Uint8Array): Section {
  const n = new TextEncoder().encode(name);
  const payload = new Uint8Array([...u32leb(n.length), ...n, ...data]);
  return { id: SECTION.custom, payload };
}

export function concat(parts: ReadonlyArray<Uint8Array | number[]>): Uint8Array<ArrayBuffer> {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** One segment of a data section: active ones have the memory offset they load at, passive ones null. */
export interface DataSegment {
  offset: number | null;
  bytes: Uint8Array;
}

/** The segments of a data section's payload, in order (active with an i32.const offset, or passive). */
export function dataSegments(payload: Uint8Array): DataSegment[] {
  const r = new Reader(payload);
  const out: DataSegment[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const flag = r.u32();
    if (flag === 1) {
      out.push({ offset: null, bytes: r.take(r.u32()) });
      continue;
    }
    if (flag === 2) r.u32();
    if (r.byte() !== 0x41) throw new Error("data segment offset is not i32.const");
    const offset = r.s32();
    if (r.byte() !== 0x0b) throw new Error("data segment offset expression is not a constant");
    out.push({ offset, bytes: r.take(r.u32()) });
  }
  return out;
}
