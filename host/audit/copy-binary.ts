// A batch of rows in PostgreSQL's binary COPY format (the "COPY ... FROM STDIN (FORMAT binary)"
// of insert.ts): a header, then per row a field count and each field as a 32-bit length (-1 for
// NULL) and the type's binary form, then a trailer. Binary input needs no parsing on the server,
// which was a fifth of its CPU per row with text arrays (docs/audit.md, "Throughput").
//
// Each value must mean exactly what its text form means to INSERT (the reference path): a
// value this encoder cannot write that way (a timestamp not in the writer's UTC-millisecond
// form, a malformed id or hash, a non-integer) makes the whole batch null, and the caller
// inserts it as text instead, where PostgreSQL judges it as before.
import type { AuditRow } from "./chain.js";

/** The table's columns in order: the fields of each row below. */
export const COPY_COLUMNS: readonly (keyof AuditRow)[] = [
  "ts", // timestamptz
  "decision_id", // uuid
  "decision",
  "source_spiffe_id",
  "source_pod",
  "source_node",
  "dest_spiffe_id",
  "dest_port", // integer
  "operator_subject",
  "operator_roles", // text[]
  "operator_mfa", // boolean
  "operator_incident",
  "target_service",
  "target_action",
  "policy_matched",
  "latency_us", // bigint
  "enforced", // boolean
  "reason",
  "policy_version",
  "origin",
  "caller",
  "chain_id",
  "seq", // bigint
  "prev_hash", // bytea
  "hash", // bytea
];

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");
/** PostgreSQL's timestamp epoch (2000-01-01) in Unix milliseconds. */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const TEXT_OID = 25;
const TWO_32 = 2 ** 32;
/** The writer's timestamps: UTC, milliseconds, as Date.prototype.toISOString() writes them. */
const TS_FORM = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Thrown inside the encoder for a value only the text path may judge. */
class NotBinary extends Error {}

class Writer {
  buf: Buffer;
  off = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }
  i16(v: number): void {
    this.room(2);
    const buf = this.buf;
    buf[this.off++] = (v >>> 8) & 0xff;
    buf[this.off++] = v & 0xff;
  }
  /** Big-endian 32 bits (signed or not: the same bytes). */
  i32(v: number): void {
    this.room(4);
    const buf = this.buf;
    let o = this.off;
    buf[o++] = (v >>> 24) & 0xff;
    buf[o++] = (v >>> 16) & 0xff;
    buf[o++] = (v >>> 8) & 0xff;
    buf[o++] = v & 0xff;
    this.off = o;
  }
  /** A safe integer as a signed 64-bit big-endian value (two's complement through the split). */
  i64(v: number): void {
    const hi = Math.floor(v / TWO_32);
    this.i32(hi | 0);
    this.i32(v - hi * TWO_32);
  }
  /** A UTF-8 string, length-prefixed. ASCII is copied byte by byte: cheaper than a call into Buffer.write for short strings. */
  text(s: string): void {
    const n = s.length;
    this.room(4 + n * 3);
    const buf = this.buf;
    const at = this.off + 4;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[at + i] = c;
    }
    const bytes = i === n ? n : i + buf.write(s.slice(i), at + i, "utf8");
    this.i32(bytes);
    this.off = at + bytes;
  }
  /** `chars` hex digits of `s` from `from` as bytes; anything but hex digits is not binary. */
  hex(s: string, from: number, chars: number): void {
    const bytes = chars >>> 1;
    this.room(bytes);
    const buf = this.buf;
    let at = this.off;
    for (let i = from, end = from + chars; i < end; i += 2) {
      const hi = HEX[s.charCodeAt(i)] ?? 255;
      const lo = HEX[s.charCodeAt(i + 1)] ?? 255;
      if ((hi | lo) > 15) throw new NotBinary();
      buf[at++] = (hi << 4) | lo;
    }
    this.off = at;
  }
}

/** Hex digit values by character code (255: not a hex digit). */
const HEX = new Uint8Array(128).fill(255);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

let lastTs = "";
let lastMs = 0;

/** Milliseconds of a timestamp in exactly the form toISOString() gives it (rows mostly repeat the previous one's). */
function unixMs(v: unknown): number {
  if (v === lastTs) return lastMs;
  if (typeof v !== "string" || !TS_FORM.test(v)) throw new NotBinary();
  const ms = Date.parse(v);
  // A date that does not exist (February 30th) must stay PostgreSQL's to refuse.
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== v) throw new NotBinary();
  lastTs = v;
  lastMs = ms;
  return ms;
}

function integer(v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) throw new NotBinary();
  return v;
}

function text(w: Writer, v: string | null): void {
  if (v === null) return w.i32(-1);
  if (typeof v !== "string") throw new NotBinary();
  w.text(v);
}

function timestamptz(w: Writer, v: string): void {
  w.i32(8);
  w.i64((unixMs(v) - PG_EPOCH_MS) * 1000);
}

/** The canonical 8-4-4-4-12 form only (uuid_in also takes others: those go the text way). */
function uuid(w: Writer, v: string): void {
  if (typeof v !== "string" || v.length !== 36 || v[8] !== "-" || v[13] !== "-" || v[18] !== "-" || v[23] !== "-") throw new NotBinary();
  w.i32(16);
  w.hex(v, 0, 8);
  w.hex(v, 9, 4);
  w.hex(v, 14, 4);
  w.hex(v, 19, 4);
  w.hex(v, 24, 12);
}

function int4(w: Writer, v: number | null): void {
  if (v === null) return w.i32(-1);
  w.i32(4);
  w.i32(integer(v, -(2 ** 31), 2 ** 31 - 1));
}

function int8(w: Writer, v: number): void {
  w.i32(8);
  w.i64(integer(v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
}

function bool(w: Writer, v: boolean | null): void {
  if (v === null) return w.i32(-1);
  if (typeof v !== "boolean") throw new NotBinary();
  w.i32(1);
  w.room(1);
  w.buf[w.off++] = v ? 1 : 0;
}

/** Hex text as bytea (decode(x, 'hex') of the text path). */
function byteaHex(w: Writer, v: string): void {
  if (typeof v !== "string" || (v.length & 1) !== 0) throw new NotBinary();
  w.i32(v.length >>> 1);
  w.hex(v, 0, v.length);
}

/**
 * One row, its fields in COPY_COLUMNS order. Written out field by field rather than looped over
 * COPY_COLUMNS: a property read by a name that changes every field is a slow, megamorphic
 * lookup, and this runs 25 times per record on the writer thread.
 */
function row(w: Writer, r: AuditRow): void {
  w.i16(COPY_COLUMNS.length);
  timestamptz(w, r.ts);
  uuid(w, r.decision_id);
  text(w, r.decision);
  text(w, r.source_spiffe_id);
  text(w, r.source_pod);
  text(w, r.source_node);
  text(w, r.dest_spiffe_id);
  int4(w, r.dest_port);
  text(w, r.operator_subject);
  roles(w, r.operator_roles);
  bool(w, r.operator_mfa);
  text(w, r.operator_incident);
  text(w, r.target_service);
  text(w, r.target_action);
  text(w, r.policy_matched);
  int8(w, r.latency_us);
  bool(w, r.enforced);
  text(w, r.reason);
  text(w, r.policy_version);
  text(w, r.origin);
  text(w, r.caller);
  text(w, r.chain_id);
  int8(w, r.seq);
  byteaHex(w, r.prev_hash);
  byteaHex(w, r.hash);
}

/** A one-dimensional text array without NULLs (array_send's layout); empty: no dimensions. */
function roles(w: Writer, v: readonly string[] | null): void {
  if (v === null) return w.i32(-1);
  if (!Array.isArray(v)) throw new NotBinary();
  const start = w.off;
  w.i32(0); // field length, filled in below
  w.i32(v.length === 0 ? 0 : 1);
  w.i32(0); // no NULL elements
  w.i32(TEXT_OID);
  if (v.length > 0) {
    w.i32(v.length);
    w.i32(1); // lower bound
  }
  for (const s of v) {
    if (typeof s !== "string") throw new NotBinary();
    w.text(s);
  }
  const end = w.off;
  w.off = start;
  w.i32(end - start - 4);
  w.off = end;
}

/** The rows as COPY binary data, or null when some value must go the text way. */
export function copyBinary(rows: readonly AuditRow[]): Buffer | null {
  const w = new Writer(64 + rows.length * 640);
  w.room(SIGNATURE.length + 8);
  w.off += SIGNATURE.copy(w.buf, w.off);
  w.i32(0); // flags: no OIDs
  w.i32(0); // header extension length
  try {
    for (const r of rows) row(w, r);
  } catch (e) {
    if (e instanceof NotBinary) return null;
    throw e;
  }
  w.i16(-1);
  return w.buf.subarray(0, w.off);
}
