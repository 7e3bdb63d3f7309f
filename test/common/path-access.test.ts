// Who can reach a path, decided as the kernel does for a process with only its primary group
// (how libuv spawns a process under another account), and the one-line reason when it cannot:
// the first blocking directory with its mode and owner, a component that is not a directory, or
// the directory that is not writable.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { requireRoot } from "../support/programs.js";
import { type Account, currentAccount, describeAccount, ensureWritableDir, errnoText, firstBlocker, PathAccessError, whyNot } from "../../host/common/path-access.js";

const top = mkdtempSync(join(tmpdir(), "zt-path-access-"));
chmodSync(top, 0o755);
afterAll(() => rmSync(top, { recursive: true, force: true }));

const other: Account = { name: "someone", uid: 54321, gid: 54321 };

describe("path access", () => {
  it("finds the first directory another account cannot traverse, by owner, group or other bits", () => {
    const a = join(top, "a");
    const b = join(a, "b");
    mkdirSync(b, { recursive: true });
    chmodSync(a, 0o700);
    expect(firstBlocker(join(b, "c"), other)).toEqual({ path: a, detail: `mode 700, owner ${currentAccount().name}` });
    chmodSync(a, 0o711);
    expect(firstBlocker(join(b, "c"), other)).toBeNull();
    // Root traverses anything; only a path component that is not a directory stops it.
    expect(firstBlocker(b, { name: "root", uid: 0, gid: 0 })).toBeNull();
    writeFileSync(join(top, "file"), "");
    expect(firstBlocker(join(top, "file", "x"), { name: "root", uid: 0, gid: 0 })).toEqual({ path: join(top, "file"), detail: "not a directory" });
    // The path itself is checked only when asked.
    const last = join(top, "last");
    mkdirSync(last, { mode: 0o700 });
    chmodSync(last, 0o700);
    expect(firstBlocker(last, other, false)).toBeNull();
    expect(firstBlocker(last, other)?.path).toBe(last);
  });

  it("as root: the group's bit counts for the account's primary group, the owner's for its owner", () => {
    requireRoot("changing the owner of a directory");
    const a = join(top, "owned");
    const b = join(a, "b");
    mkdirSync(b, { recursive: true });
    chmodSync(a, 0o710);
    chownSync(a, 0, other.gid);
    expect(firstBlocker(b, other)).toBeNull();
    chownSync(a, other.uid, 0);
    chmodSync(a, 0o070);
    expect(firstBlocker(b, other)).toEqual({ path: a, detail: `mode 70, owner uid ${other.uid}` });
  });

  it("says why in words: the blocker, the directory that is not writable, or the errno", () => {
    const ro = join(top, "ro");
    mkdirSync(ro, { mode: 0o755 });
    chmodSync(ro, 0o755);
    const eacces = Object.assign(new Error("EACCES: permission denied, mkdir"), { code: "EACCES" });
    expect(whyNot(join(ro, "x", "y"), other, eacces)).toBe(`${ro} is not writable (mode 755, owner ${currentAccount().name})`);
    expect(whyNot(join(top, "file", "data"), other, Object.assign(new Error(), { code: "ENOTDIR" }))).toBe(`${join(top, "file")} is not a directory`);
    expect(errnoText(Object.assign(new Error("x"), { code: "EROFS" }))).toBe("read-only file system");
    expect(errnoText(new Error("first line\n    at somewhere (x.js:1:1)"))).toBe("first line");
    expect(describeAccount({ name: "alice", uid: 1000, gid: 1000 })).toBe("alice (uid 1000)");
  });

  it("ensureWritableDir creates the directory 0700, or throws one line naming it, the account and why", async () => {
    const ok = join(top, "made", "data");
    await ensureWritableDir(ok, "ZT_DATA_DIR", "choose another");
    const err = await ensureWritableDir(join(top, "file", "data"), "ZT_DATA_DIR", "choose a ZT_DATA_DIR this account can write").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(PathAccessError);
    expect(err!.message).toBe(
      `ZT_DATA_DIR ${join(top, "file", "data")}: cannot create or write it as ${describeAccount(currentAccount())}: ${join(top, "file")} is not a directory; choose a ZT_DATA_DIR this account can write`,
    );
  });
});
