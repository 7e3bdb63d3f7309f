// A small reader for the parts of a Wasm binary that decide whether Envoy loads it: the type,
// import, function, memory, export and start sections, plus custom section names.
// Node's WebAssembly.Module.imports()/exports() give names and kinds but no signatures;
// Envoy's host rejects a module on a signature mismatch, so the check needs the types.
// Format: WebAssembly core spec 1.0/2.0, "Binary Format" (sections, LEB128, valtypes).

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";
export type ExternKind = "func" | "table" | "memory" | "global" | "tag";

export interface FuncType {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

export interface ImportEntry {
  readonly module: string;
  readonly name: string;
  readonly kind: ExternKind;
  /** The function's signature; null for non-function imports. */
  readonly type: FuncType | null;
}

export interface ExportEntry {
  readonly name: string;
  readonly kind: ExternKind;
  readonly index: number;
  /** The function's signature; null for non-function exports. */
  readonly type: FuncType | null;
}

export interface MemoryLimits {
  readonly min: number;
  readonly max: number | null;
}

export interface CustomSection {
  readonly name: string;
  /** Offset of the section payload (after the name) in the module bytes. */
  readonly offset: number;
  readonly size: number;
}

export interface ModuleSections {
  readonly types: readonly FuncType[];
  readonly imports: readonly ImportEntry[];
  readonly exports: readonly ExportEntry[];
  readonly memories: readonly MemoryLimits[];
  /** Index of the start function (section 8), or null: a start function would run at instantiation. */
  readonly start: number | null;
  readonly customSections: readonly CustomSection[];
}

export class WasmFormatError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} (at byte ${offset})`);
    this.name = "WasmFormatError";
  }
}

const VALTYPES: Readonly<Record<number, ValType>> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};

const KINDS: readonly ExternKind[] = ["func", "table", "memory", "global", "tag"];

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError("unexpected end of section", this.pos);
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      if (shift === 28 && (b & 0x70) !== 0) throw new WasmFormatError("u32 LEB128 overflow", this.pos - 1);
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
      if (shift > 28) throw new WasmFormatError("u32 LEB128 too long", this.pos);
    }
  }

  name(): string {
    const len = this.u32();
    if (this.pos + len > this.end) throw new WasmFormatError("name runs past the section", this.pos);
    const text = new TextDecoder("utf-8", { fatal: true }).decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return text;
  }

  valtype(): ValType {
    const at = this.pos;
    const t = VALTYPES[this.byte()];
    if (t === undefined) throw new WasmFormatError("unknown value type", at);
    return t;
  }

  limits(): MemoryLimits {
    const flags = this.byte();
    const min = this.u32();
    const max = (flags & 1) !== 0 ? this.u32() : null;
    return { min, max };
  }

  /** Skips a constant expression (global initialisers); only the simple forms appear here. */
  skipConstExpr(): void {
    for (;;) {
      const op = this.byte();
      if (op === 0x0b) return;
      if (op === 0x41 || op === 0x23 || op === 0xd2) this.u32();
      else if (op === 0x42) this.skipLeb();
      else if (op === 0x43) this.pos += 4;
      else if (op === 0x44) this.pos += 8;
      else if (op === 0xd0) this.byte();
      else throw new WasmFormatError(`unsupported opcode 0x${op.toString(16)} in constant expression`, this.pos - 1);
    }
  }

  skipLeb(): void {
    while ((this.byte() & 0x80) !== 0) {
      /* continuation bytes */
    }
  }
}

/** Reads the sections of a Wasm module. Throws WasmFormatError on a malformed binary. */
export function readModuleSections(bytes: Uint8Array): ModuleSections {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmFormatError("not a Wasm module (bad magic)", 0);
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmFormatError("unsupported Wasm binary version", 4);
  }
  const types: FuncType[] = [];
  const imports: ImportEntry[] = [];
  const funcTypeIndices: number[] = [];
  const memories: MemoryLimits[] = [];
  const rawExports: Array<{ name: string; kind: ExternKind; index: number }> = [];
  const customSections: CustomSection[] = [];
  let start: number | null = null;

  const top = new Reader(bytes, 8, bytes.length);
  while (top.pos < bytes.length) {
    const id = top.byte();
    const size = top.u32();
    const begin = top.pos;
    const end = begin + size;
    if (end > bytes.length) throw new WasmFormatError(`section ${id} runs past the end of the module`, begin);
    const r = new Reader(bytes, begin, end);
    switch (id) {
      case 0: {
        const name = r.name();
        customSections.push({ name, offset: r.pos, size: end - r.pos });
        break;
      }
      case 1: {
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const form = r.byte();
          if (form !== 0x60) throw new WasmFormatError("type entry is not a function type", r.pos - 1);
          const params: ValType[] = [];
          const pc = r.u32();
          for (let j = 0; j < pc; j++) params.push(r.valtype());
          const results: ValType[] = [];
          const rc = r.u32();
          for (let j = 0; j < rc; j++) results.push(r.valtype());
          types.push({ params, results });
        }
        break;
      }
      case 2: {
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const module = r.name();
          const name = r.name();
          const kindAt = r.pos;
          const kind = KINDS[r.byte()];
          if (kind === undefined) throw new WasmFormatError("unknown import kind", kindAt);
          let type: FuncType | null = null;
          if (kind === "func") {
            const ti = r.u32();
            type = types[ti] ?? null;
            if (type === null) throw new WasmFormatError(`import ${module}.${name} uses unknown type ${ti}`, kindAt);
            funcTypeIndices.push(ti);
          } else if (kind === "table") {
            r.valtype();
            r.limits();
          } else if (kind === "memory") {
            memories.push(r.limits());
          } else if (kind === "global") {
            r.valtype();
            r.byte();
          } else {
            r.byte();
            r.u32();
          }
          imports.push({ module, name, kind, type });
        }
        break;
      }
      case 3: {
        const n = r.u32();
        for (let i = 0; i < n; i++) funcTypeIndices.push(r.u32());
        break;
      }
      case 5: {
        const n = r.u32();
        for (let i = 0; i < n; i++) memories.push(r.limits());
        break;
      }
      case 7: {
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const name = r.name();
          const kindAt = r.pos;
          const kind = KINDS[r.byte()];
          if (kind === undefined) throw new WasmFormatError("unknown export kind", kindAt);
          rawExports.push({ name, kind, index: r.u32() });
        }
        break;
      }
      case 8:
        start = r.u32();
        break;
      default:
        break;
    }
    top.pos = end;
  }

  const exports: ExportEntry[] = rawExports.map((e) => {
    if (e.kind !== "func") return { ...e, type: null };
    const ti = funcTypeIndices[e.index];
    const type = ti === undefined ? null : (types[ti] ?? null);
    if (type === null) throw new WasmFormatError(`export ${e.name} names unknown function ${e.index}`, 0);
    return { ...e, type };
  });
  return { types, imports, exports, memories, start, customSections };
}

/** "(i32, i64) -> i32", the form used in Envoy's link error messages. */
export function formatFuncType(t: FuncType): string {
  return `(${t.params.join(", ")}) -> ${t.results.length === 0 ? "()" : t.results.join(", ")}`;
}

export function sameFuncType(a: FuncType, b: FuncType): boolean {
  return (
    a.params.length === b.params.length &&
    a.results.length === b.results.length &&
    a.params.every((p, i) => p === b.params[i]) &&
    a.results.every((p, i) => p === b.results[i])
  );
}
