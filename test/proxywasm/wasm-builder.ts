// A minimal Wasm binary writer for hand-made modules that exercise the harness's refusal
// paths (unknown import, bad signature, missing allocator, restricted start, traps).
import type { FuncType, ValType } from "./wasm-sections.js";

const VAL: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b, funcref: 0x70, externref: 0x6f };

export const OP = {
  unreachable: 0x00,
  end: 0x0b,
  call: 0x10,
  drop: 0x1a,
  localGet: 0x20,
  i32Const: 0x41,
} as const;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function name(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

export interface BuiltImport {
  readonly module: string;
  readonly name: string;
  readonly type: FuncType;
}

export interface BuiltFunction {
  readonly type: FuncType;
  /** Instructions without the final `end`. */
  readonly body: number[];
  readonly export?: string;
}

/** `i32.const n`. */
export function i32(n: number): number[] {
  return [OP.i32Const, ...sleb(n)];
}

/** Builds a module with one exported memory ("memory", 1 page) unless memory is false. */
export function buildWasm(imports: BuiltImport[], functions: BuiltFunction[], opts: { memory?: boolean } = {}): Uint8Array {
  const types: FuncType[] = [];
  const typeIndex = (t: FuncType): number => {
    const i = types.findIndex((u) => u.params.join() === t.params.join() && u.results.join() === t.results.join());
    if (i >= 0) return i;
    types.push(t);
    return types.length - 1;
  };
  const importEntries = imports.map((im) => [...name(im.module), ...name(im.name), 0x00, ...uleb(typeIndex(im.type))]);
  const funcTypes = functions.map((f) => uleb(typeIndex(f.type)));
  const bytes: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  bytes.push(...section(1, vec(types.map((t) => [0x60, ...vec(t.params.map((p) => [VAL[p]])), ...vec(t.results.map((r) => [VAL[r]]))]))));
  if (importEntries.length > 0) bytes.push(...section(2, vec(importEntries)));
  bytes.push(...section(3, vec(funcTypes)));
  if (opts.memory !== false) bytes.push(...section(5, vec([[0x00, ...uleb(1)]])));
  const exports: number[][] = [];
  functions.forEach((f, i) => {
    if (f.export !== undefined) exports.push([...name(f.export), 0x00, ...uleb(imports.length + i)]);
  });
  if (opts.memory !== false) exports.push([...name("memory"), 0x02, 0x00]);
  bytes.push(...section(7, vec(exports)));
  const bodies = functions.map((f) => {
    const code = [0x00 /* no locals */, ...f.body, OP.end];
    return [...uleb(code.length), ...code];
  });
  bytes.push(...section(10, vec(bodies)));
  return new Uint8Array(bytes);
}

export const T = {
  v_v: { params: [], results: [] } as FuncType,
  i_i: { params: ["i32"], results: ["i32"] } as FuncType,
  ii_v: { params: ["i32", "i32"], results: [] } as FuncType,
  ii_i: { params: ["i32", "i32"], results: ["i32"] } as FuncType,
  iii_i: { params: ["i32", "i32", "i32"], results: ["i32"] } as FuncType,
  iiii_v: { params: ["i32", "i32", "i32", "i32"], results: [] } as FuncType,
};

/** The smallest module Envoy accepts: ABI marker, malloc, memory. Extra functions appended. */
export function minimalFilter(extra: BuiltFunction[] = [], imports: BuiltImport[] = []): Uint8Array {
  return buildWasm(imports, [
    { type: T.v_v, body: [], export: "proxy_abi_version_0_2_1" },
    { type: T.i_i, body: i32(1024), export: "malloc" },
    ...extra,
  ]);
}
