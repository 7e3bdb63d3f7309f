// The audit hand-off's shared ring: the engine thread (one producer) writes each record's
// canonical JSON as UTF-8 and a newline into a SharedArrayBuffer; the writer thread (one
// consumer) takes the complete lines. A record then costs the engine thread one UTF-8 write
// and an atomic store, instead of its share of a postMessage per group (a structured clone,
// a timer, and a cross-thread wake-up that lets the writer thread take the engine thread's
// core). The writer polls the ring while records flow and sleeps on Atomics.waitAsync once
// they stop: only a record that finds it asleep pays a notify.
//
// Canonical JSON holds no raw newline, and the byte 0x0A never occurs inside a multi-byte
// UTF-8 sequence, so the stream is split into records without decoding it. The ring is a
// stream of bytes, not slots: a record larger than the free space, or than the whole ring,
// goes in piece by piece as room frees, and the reader keeps an unfinished line's bytes
// until its end arrives. A full ring never drops a record: what does not fit waits, in
// order, on the engine thread (the sink counts it in its queue, so the memory bound and the
// backpressure see it) until the reader reports room.

/** Header words (Int32): positions are byte counts since the start, modulo 2^32. */
const W = 0; // written (the producer's)
const R = 1; // consumed (the consumer's)
const IDLE = 2; // 1: the consumer sleeps on Atomics.waitAsync(IDLE) and must be notified
const WANT_ROOM = 3; // 1: the producer holds bytes that did not fit and waits to hear of room
const HEADER_BYTES = 64;
const NEWLINE = 0x0a;

/** 4 MiB: ~6,000 records of ~700 bytes, the backpressure bound (threaded-sink.ts ADMIT_BATCHES) at full batches. */
export const DEFAULT_RING_BYTES = 4 << 20;

/** Not in TypeScript's ES2023 lib; Node 20 has it. */
type WaitAsync = (a: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** The shared memory of one ring holding `bytes` (a power of two) of records. */
export function createRing(bytes: number = DEFAULT_RING_BYTES): SharedArrayBuffer {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1 << 30 || (bytes & (bytes - 1)) !== 0) {
    throw new RangeError(`ring size must be a power of two between 16 and 2^30 bytes, got ${bytes}`);
  }
  return new SharedArrayBuffer(HEADER_BYTES + bytes);
}

abstract class RingEnd {
  protected readonly hdr: Int32Array;
  protected readonly data: Buffer;
  protected readonly cap: number;
  protected readonly mask: number;

  constructor(sab: SharedArrayBuffer) {
    this.hdr = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.data = Buffer.from(sab, HEADER_BYTES);
    this.cap = this.data.length;
    this.mask = this.cap - 1;
  }
}

/** The engine thread's end. */
export class RingWriter extends RingEnd {
  private w = 0;
  /** Encoded lines that did not fit yet, in order; the first is written from `offset` on. */
  private waiting: Buffer[] = [];
  private offset = 0;
  private waitingBytes = 0;
  /** How often a record found the reader asleep and woke it (a notify each). */
  wakeups = 0;

  /**
   * Appends one record's line (canonical JSON: no raw newline). `ascii`: the caller knows the
   * line is ASCII, so it is copied byte for byte instead of being encoded as UTF-8.
   */
  push(line: string, ascii = false): void {
    if (this.waiting.length === 0) {
      const pos = this.w & this.mask;
      // At most 3 bytes per UTF-16 unit, and the newline: then the whole line fits as it is.
      const worst = (ascii ? line.length : line.length * 3) + 1;
      if (worst <= this.cap - pos && worst <= this.room()) {
        const n = this.data.write(line, pos, ascii ? "latin1" : "utf8");
        this.data[pos + n] = NEWLINE;
        this.publish(n + 1);
        return;
      }
    }
    const bytes = Buffer.from(line + "\n", "utf8");
    this.waiting.push(bytes);
    this.waitingBytes += bytes.length;
    this.pump();
  }

  /**
   * Moves waiting bytes into the ring as far as there is room; true when none wait any more.
   * Called by push() and whenever the reader reports room (the writer thread's "room" message).
   */
  pump(): boolean {
    for (;;) {
      while (this.waiting.length > 0) {
        const free = this.room();
        if (free === 0) break;
        const chunk = this.waiting[0] as Buffer;
        const n = Math.min(free, chunk.length - this.offset);
        this.copyIn(chunk, this.offset, n, this.w & this.mask);
        this.offset += n;
        this.waitingBytes -= n;
        if (this.offset === chunk.length) {
          this.waiting.shift();
          this.offset = 0;
        }
        this.publish(n);
      }
      if (this.waiting.length === 0) {
        Atomics.store(this.hdr, WANT_ROOM, 0);
        return true;
      }
      // Ask to hear of room, then look again: the reader may have made room just before.
      Atomics.store(this.hdr, WANT_ROOM, 1);
      if (this.room() === 0) return false;
    }
  }

  /** Where the stream ends once everything pushed so far is in the ring (flush and close wait for the reader to get there). */
  get end(): number {
    return (this.w + this.waitingBytes) >>> 0;
  }

  /** Bytes pushed that are not in the ring yet (waiting for room). */
  get waitingForRoom(): number {
    return this.waitingBytes;
  }

  /** Free bytes in the ring. */
  private room(): number {
    return this.cap - ((this.w - Atomics.load(this.hdr, R)) >>> 0);
  }

  private copyIn(src: Buffer, from: number, n: number, pos: number): void {
    const first = Math.min(n, this.cap - pos);
    src.copy(this.data, pos, from, from + first);
    if (first < n) src.copy(this.data, 0, from + first, from + n);
  }

  private publish(n: number): void {
    this.w = (this.w + n) >>> 0;
    Atomics.store(this.hdr, W, this.w);
    // Sequentially consistent with the reader's store of IDLE before it looks at W once more.
    if (Atomics.load(this.hdr, IDLE) === 1 && Atomics.exchange(this.hdr, IDLE, 0) === 1) {
      Atomics.notify(this.hdr, IDLE, 1);
      this.wakeups++;
    }
  }
}

/** The writer thread's end. */
export class RingReader extends RingEnd {
  private r = 0;
  /** The start of a line whose end has not arrived yet (a record written in pieces). */
  private carry: Buffer | null = null;

  /** Bytes consumed so far (mod 2^32): compared with RingWriter.end. */
  get position(): number {
    return this.r;
  }

  /** True once the reader consumed everything up to `end` (a RingWriter.end). */
  reached(end: number): boolean {
    return ((end - this.r) | 0) <= 0;
  }

  /**
   * Takes what the ring holds: the complete records, as one text with a record per line
   * (no newline after the last), or null when none is complete. Bytes of an unfinished
   * record are kept here, so the ring's room is freed in any case.
   */
  take(): string | null {
    const avail = (Atomics.load(this.hdr, W) - this.r) >>> 0;
    if (avail === 0) return null;
    const start = this.r & this.mask;
    const first = Math.min(avail, this.cap - start);
    const second = avail - first;
    // The last newline in [0, avail), as an offset from `start`.
    let last = second > 0 ? this.data.lastIndexOf(NEWLINE, second - 1) : -1;
    if (last >= 0) last += first;
    else {
      const i = this.data.lastIndexOf(NEWLINE, start + first - 1);
      last = i >= start ? i - start : -1;
    }
    let text: string | null = null;
    if (last < 0) {
      this.carry = this.join(this.carry, start, avail);
    } else {
      if (this.carry === null && last <= first) text = this.data.toString("utf8", start, start + last);
      else text = this.join(this.carry, start, last).toString("utf8");
      this.carry = last + 1 < avail ? this.join(null, (start + last + 1) & this.mask, avail - last - 1) : null;
    }
    this.r = (this.r + avail) >>> 0;
    Atomics.store(this.hdr, R, this.r);
    return text;
  }

  /** True (once) when the producer waits to hear of room: it asked, and this reader consumed since. */
  roomWanted(): boolean {
    return Atomics.load(this.hdr, WANT_ROOM) === 1 && Atomics.exchange(this.hdr, WANT_ROOM, 0) === 1;
  }

  /**
   * Declares the reader asleep. Resolves when a producer's record wakes it; null when
   * records arrived meanwhile (take them instead of sleeping).
   */
  sleep(): Promise<void> | null {
    Atomics.store(this.hdr, IDLE, 1);
    if (Atomics.load(this.hdr, W) >>> 0 !== this.r) {
      Atomics.store(this.hdr, IDLE, 0);
      return null;
    }
    const res = waitAsync(this.hdr, IDLE, 1);
    return res.async ? res.value.then(() => undefined) : null;
  }

  /** A copy of `n` ring bytes from `pos` (wrapping), after `prefix`. */
  private join(prefix: Buffer | null, pos: number, n: number): Buffer {
    const first = Math.min(n, this.cap - pos);
    const parts = [this.data.subarray(pos, pos + first)];
    if (first < n) parts.push(this.data.subarray(0, n - first));
    if (prefix !== null) parts.unshift(prefix);
    return Buffer.concat(parts);
  }
}
