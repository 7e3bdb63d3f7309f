// Checkpoints as data: signing, parsing untrusted input, and what verify concludes from a
// set of them (foldCheckpoints), case by case; the key file and configuration errors.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../host/audit/chain.js";
import { CHECKPOINT_FORMAT, checkpointHash, parseSignedCheckpoint, signCheckpoint, type Checkpoint, type CheckpointChain, type SignedCheckpoint } from "../../host/audit/checkpoint.js";
import { foldCheckpoints } from "../../host/audit/checkpoint-evidence.js";
import { keyId, loadCheckpointKey } from "../../host/audit/checkpoint-key.js";
import { parseCheckpointLines } from "../../host/audit/checkpoint-store.js";
import { auditConfigFromEnv } from "../../host/audit/config.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const H = (c: string): string => c.repeat(64);

function entry(id: string, seq: number, hash: string, closed = false): CheckpointChain {
  return { chain_id: id, started_at: "2026-12-06T10:00:00.000Z", predecessor: null, seq, hash, closed };
}

/** A writer's checkpoints 1..n, each linked to the one before, with the chain entries given per checkpoint. */
function series(entries: CheckpointChain[][], writer = "w"): SignedCheckpoint[] {
  const out: SignedCheckpoint[] = [];
  let prev: string | null = null;
  const known = new Set<string>();
  entries.forEach((chains, i) => {
    for (const e of chains) known.add(e.chain_id);
    const c: Checkpoint = {
      format: CHECKPOINT_FORMAT,
      writer_id: writer,
      n: i + 1,
      issued_at: `2026-12-06T10:0${i}:00.000Z`,
      prev,
      key_id: keyId(publicKey),
      full: i === 0,
      chain_count: known.size,
      chains,
    };
    out.push(signCheckpoint(c, privateKey));
    prev = checkpointHash(c);
  });
  return out;
}

const fold = (list: SignedCheckpoint[]) => foldCheckpoints([{ checkpoints: list, problems: [] }], [publicKey]);

describe("checkpoints", () => {
  it("round-trip through a JSON line; the signature covers every field", () => {
    const [s] = series([[entry("w/1", 0, H("a"))]]);
    const back = parseSignedCheckpoint(JSON.parse(JSON.stringify(s)));
    expect(back).toEqual(s);
    const read = parseCheckpointLines(JSON.stringify(s) + "\n" + '{"torn', "f.jsonl");
    expect(read).toEqual({ checkpoints: [s], problems: [] });
  });

  it("refuses what is not a signed checkpoint, saying why", () => {
    const [s] = series([[entry("w/1", 0, H("a"))]]);
    const bad = (f: (c: Record<string, unknown>) => void): string => {
      const copy = JSON.parse(JSON.stringify(s)) as { checkpoint: Record<string, unknown> };
      f(copy.checkpoint);
      return parseSignedCheckpoint(copy) as string;
    };
    expect(bad((c) => (c.extra = 1))).toMatch(/exactly the fields/);
    expect(bad((c) => (c.prev = "xyz"))).toMatch(/prev must be a hex sha256/);
    expect(bad((c) => (c.chains = [{ chain_id: "x" }]))).toMatch(/chains must be a list/);
    expect(parseCheckpointLines("not json\n", "f.jsonl").problems).toEqual(["f.jsonl:1: not JSON"]);
  });

  it("a good series folds to the anchors, the declaration and the close", () => {
    const ev = fold(series([[entry("w/1", 0, H("a"))], [entry("w/1", 10, H("b"))], [entry("w/1", 20, H("c"), true)]]));
    expect(ev.problems).toEqual([]);
    const c = ev.chains.get("w/1")!;
    expect([...c.anchors.keys()]).toEqual([0, 10, 20]);
    expect(c.closed).toEqual({ seq: 20, where: "w#3" });
    expect(c.declaration).toEqual({ chain_id: "w/1", writer_id: "w", started_at: "2026-12-06T10:00:00.000Z", hash_version: 2, predecessor: null });
  });

  const base = (): SignedCheckpoint[] => series([[entry("w/1", 0, H("a"))], [entry("w/1", 10, H("b"))], [entry("w/1", 20, H("c"))]]);

  it.each([
    ["a checkpoint removed from the middle", (l: SignedCheckpoint[]) => [l[0]!, l[2]!], "checkpoint w#2 missing"],
    ["the first checkpoints removed", (l: SignedCheckpoint[]) => [l[2]!], "checkpoints w#1..2 are missing"],
    ["an edited checkpoint", (l: SignedCheckpoint[]) => [l[0]!, { ...l[1]!, checkpoint: { ...l[1]!.checkpoint, issued_at: "2026-12-06T11:00:00.000Z" } }, l[2]!], "checkpoint w#2: the signature does not verify (checkpoint modified)"],
  ])("reports %s", (_what, change, problem) => {
    expect(fold(change(base())).problems).toContain(problem);
  });

  it("reports a checkpoint signed by a key it was not told to trust", () => {
    const other = generateKeyPairSync("ed25519").publicKey;
    expect(foldCheckpoints([{ checkpoints: base(), problems: [] }], [other]).problems[0]).toMatch(/^checkpoint w#1: signed by key .* which is not a trusted key/);
  });

  it("reports a checkpoint that does not link to the one before, and two different checkpoints with one number", () => {
    const l = base();
    const forged = signCheckpoint({ ...l[1]!.checkpoint, prev: H("0") }, privateKey);
    expect(fold([l[0]!, forged, l[2]!]).problems).toContain("checkpoint w#2: does not link to checkpoint 1 (prev hash differs)");
    const twin = signCheckpoint({ ...l[1]!.checkpoint, issued_at: "2026-12-06T10:01:30.000Z" }, privateKey);
    expect(foldCheckpoints([{ checkpoints: l, problems: [] }, { checkpoints: [twin], problems: [] }], [publicKey]).problems).toContain(
      "checkpoint w#2: two different checkpoints carry this number",
    );
    // The same checkpoint from two sources (a directory and a witness) is one checkpoint.
    expect(foldCheckpoints([{ checkpoints: l, problems: [] }, { checkpoints: l, problems: [] }], [publicKey]).problems).toEqual([]);
  });

  it("reports signed heads that contradict each other", () => {
    const back = fold(series([[entry("w/1", 10, H("a"))], [entry("w/1", 5, H("b"))]])).problems;
    expect(back).toContain("checkpoint w#2: chain w/1's head moved back from 10 to 5");
    const reclosed = fold(series([[entry("w/1", 10, H("a"), true)], [entry("w/1", 12, H("b"), true)]])).problems;
    expect(reclosed).toContain("checkpoint w#2: chain w/1 changed after it was closed");
    const rehashed = fold(series([[entry("w/1", 10, H("a"))], [entry("w/1", 10, H("b"))]])).problems;
    expect(rehashed).toContain("checkpoint w#2: chain w/1 record 10 has another hash than in w#1");
  });

  it("a full checkpoint lists every chain, and chain_count counts them", () => {
    const l = series([[entry("w/1", 0, H("a")), entry("w/2", 0, H("b"))], [entry("w/2", 3, H("c"))]]);
    expect(fold(l).problems).toEqual([]);
    const c = l[1]!.checkpoint;
    const omitting = signCheckpoint({ ...c, full: true }, privateKey);
    expect(fold([l[0]!, omitting]).problems).toContain("checkpoint w#2: the full list omits chain w/1");
    const miscounted = signCheckpoint({ ...c, chain_count: 1 }, privateKey);
    expect(fold([l[0]!, miscounted]).problems).toContain("checkpoint w#2: says the writer has 1 chains, its checkpoints list 2");
  });

  it("canonical JSON is what is signed: key order in the file does not matter", () => {
    const [s] = series([[entry("w/1", 0, H("a"))]]);
    const c = s!.checkpoint as unknown as Record<string, unknown>;
    const reversed = Object.fromEntries(Object.keys(c).reverse().map((k) => [k, c[k]]));
    const reordered = { signature: s!.signature, checkpoint: reversed } as unknown as SignedCheckpoint;
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(s));
    expect(canonicalJson(reordered)).toBe(canonicalJson(s));
    expect(fold([reordered]).problems).toEqual([]);
  });
});

describe("the checkpoint key and configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "zt-cpkey-"));

  it("refuses a key that is not Ed25519, naming the file and never the key", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } }).privateKey;
    const file = join(dir, "rsa.pem");
    writeFileSync(file, rsa);
    const err = (await loadCheckpointKey(file).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(`${file}: the checkpoint key must be an Ed25519 key (found rsa)`);
    writeFileSync(file, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END PRIVATE KEY-----\n");
    const garbled = (await loadCheckpointKey(file).catch((e: Error) => e)) as Error;
    expect(garbled.message).toMatch(/is not a PEM private key/);
    expect(garbled.message).not.toContain("c2VjcmV0");
    expect(((await loadCheckpointKey(join(dir, "absent.pem")).catch((e: Error) => e)) as Error).message).toMatch(/cannot read the checkpoint key .*: ENOENT/);
  });

  it("ZT_AUDIT_* checkpoint settings and the retention floor", () => {
    expect(auditConfigFromEnv({ ZT_DATA_DIR: dir, ZT_AUDIT_CHECKPOINT_SECONDS: "5", ZT_AUDIT_CHECKPOINT_URL: "https://witness.example/cp" })).toMatchObject({
      checkpointIntervalMs: 5000,
      checkpointUrl: "https://witness.example/cp",
    });
    expect(() => auditConfigFromEnv({ ZT_AUDIT_RETENTION_DAYS: "7" })).toThrow(/ZT_AUDIT_RETENTION_DAYS must be at least 8/);
    expect(() => auditConfigFromEnv({ ZT_AUDIT_CHECKPOINT_URL: "ftp://x" })).toThrow(/must be an http\(s\) URL/);
    expect(() => auditConfigFromEnv({ ZT_AUDIT_CHECKPOINT_SECONDS: "0" })).toThrow(/positive whole number/);
  });
});
