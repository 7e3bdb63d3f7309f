// The hand-off ring (host/audit/handoff-ring.ts) on its own: whatever the ring's size, the
// lines' sizes (larger than the ring included) and characters, and however pushes, takes
// and room reports interleave, the reader gets exactly the lines pushed, in order, none
// dropped; a sleeping reader is woken by the next line, and only then.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createRing, RingReader, RingWriter } from "../../host/audit/handoff-ring.js";

/** Any text without a raw newline (canonical JSON has none), multi-byte characters included. */
const line = fc.oneof(
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.string({ unit: "grapheme", maxLength: 30 }),
  fc.string({ maxLength: 400 }),
).map((s) => s.replaceAll("\n", " "));

type Op = { push: string } | { take: true };
const ops = fc.array(fc.oneof({ weight: 3, arbitrary: line.map((s): Op => ({ push: s })) }, { weight: 1, arbitrary: fc.constant<Op>({ take: true }) }), { maxLength: 80 });

/** What the writer thread does with a take: split the text into records. */
function takeInto(reader: RingReader, writer: RingWriter, got: string[]): void {
  const text = reader.take();
  if (text !== null) got.push(...text.split("\n"));
  // The writer thread's "room" message, delivered at once.
  if (reader.roomWanted()) writer.pump();
}

describe("hand-off ring", () => {
  it("delivers every line pushed, in order, for any ring size and any interleaving", () => {
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 12 }), ops, (log2, script) => {
        const sab = createRing(2 ** log2);
        const writer = new RingWriter(sab);
        const reader = new RingReader(sab);
        const pushed: string[] = [];
        const got: string[] = [];
        for (const op of script) {
          if ("push" in op) {
            // ASCII lines as the sink hands them over when the encoder knows them to be ASCII.
            writer.push(op.push, !/[\u0080-\uffff]/.test(op.push));
            pushed.push(op.push);
          } else takeInto(reader, writer, got);
        }
        const end = writer.end;
        for (let i = 0; !reader.reached(end); i++) {
          takeInto(reader, writer, got);
          if (i > 100_000) throw new Error("the ring does not drain");
        }
        expect(writer.waitingForRoom).toBe(0);
        expect(got).toEqual(pushed);
      }),
      { numRuns: 400 },
    );
  });

  it("a line larger than the whole ring goes in piece by piece and arrives whole", () => {
    const sab = createRing(64);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    const big = "é€𝄞x".repeat(100); // 1,000 bytes of 1 to 4 byte characters
    writer.push("a");
    writer.push(big);
    writer.push("b");
    expect(writer.waitingForRoom).toBeGreaterThan(0);
    const got: string[] = [];
    while (!reader.reached(writer.end)) takeInto(reader, writer, got);
    expect(got).toEqual(["a", big, "b"]);
  });

  it("a sleeping reader is woken by the next line, and a reader that is awake costs the writer no notify", async () => {
    const sab = createRing(1024);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    writer.push("first");
    expect(reader.sleep()).toBeNull(); // records are waiting: take them instead of sleeping
    expect(reader.take()).toBe("first");
    expect(writer.wakeups).toBe(0);
    const woken = reader.sleep();
    expect(woken).not.toBeNull();
    writer.push("second");
    expect(writer.wakeups).toBe(1);
    await woken;
    writer.push("third"); // the reader has not declared itself asleep again: no notify
    expect(writer.wakeups).toBe(1);
    expect(reader.take()).toBe("second\nthird");
  });

  it("refuses a ring size that is not a power of two", () => {
    expect(() => createRing(1000)).toThrow(RangeError);
    expect(() => createRing(8)).toThrow(RangeError);
  });
});
