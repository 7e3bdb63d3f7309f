// Nothing in the suite skips silently: eslint.config.js refuses `.skip`, `.skipIf`, `.runIf`,
// `.todo`, `.only` and `ctx.skip()` in test files (a test that cannot run fails with the reason),
// and ordinary code that happens to have a `skip` method is left alone.
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

const eslint = new ESLint({ cwd: process.cwd() });

async function skips(code: string, filePath = "test/x/y.test.ts"): Promise<number> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.filter((m) => m.ruleId === "no-restricted-syntax" && /never skips/.test(m.message)).length;
}

describe("no skipped tests (eslint no-restricted-syntax)", () => {
  const refused = [
    'it.skip("x", () => {});',
    'describe.skip("x", () => {});',
    'it.skipIf(true)("x", () => {});',
    'describe.runIf(false)("x", () => {});',
    'it.todo("x");',
    'test.only("x", () => {});',
    'describe.concurrent.skip("x", () => {});',
    'it("x", (ctx) => { ctx.skip(); });',
  ];
  it.each(refused)("%s is refused", async (code) => {
    expect(await skips(code)).toBe(1);
  });

  it("allows ordinary code with skip-like names, and the rule is for test files only", async () => {
    expect(await skips("const r = { skipLeb() {} }; r.skipLeb(); const reader = { skip(n: number) { return n; } }; reader.skip(3);")).toBe(0);
    expect(await skips('it.skip("x", () => {});', "host/common/x.ts")).toBe(0);
  });
});
