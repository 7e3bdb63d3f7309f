// The room boundaries in eslint.config.js fire: an import against the data flow fails lint,
// one along it passes. Runs ESLint's own API on snippets placed (by file path) in each room.
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

const eslint = new ESLint({ cwd: process.cwd() });

async function restricted(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("room boundaries (eslint no-restricted-imports)", () => {
  const against: [string, string][] = [
    ["host/engine/x.ts", 'import { createApp } from "../http/app.js";'],
    ["host/engine/x.ts", 'import { Hono } from "hono";'],
    ["host/engine/sub/x.ts", 'import { main } from "../../cli/main.js";'],
    ["host/audit/x.ts", 'import { decide } from "../engine/decide.js";'],
    ["host/identity/x.ts", 'import { Hono } from "hono";'],
    ["host/metrics/x.ts", 'import { PolicyStore } from "../engine/policy-store.js";'],
    ["host/http/x.ts", 'import { serveCommand } from "../cli/serve.js";'],
    ["host/http/routes/x.ts", 'import { proxyApp } from "../../proxy/index.js";'],
    ["compiler/x.ts", 'import { PolicyRuntime } from "../host/engine/runtime.js";'],
  ];
  it.each(against)("%s: %s is refused", async (file, code) => {
    const messages = await restricted(file, code);
    expect(messages.length).toBe(1);
    expect(messages[0]).toMatch(/imports point one way|holds no HTTP|never imports host/);
  });

  const along: [string, string][] = [
    ["host/http/x.ts", 'import { PolicyStore } from "../engine/policy-store.js";'],
    ["host/engine/x.ts", 'import type { AuditSink } from "../audit/record.js";'],
    ["host/engine/x.ts", 'import { parseSpiffeId } from "../../compiler/spiffe.js";'],
    ["host/cli/x.ts", 'import { startEngine } from "../http/server.js";'],
    ["host/proxy/x.ts", 'import { Hono } from "hono";'],
  ];
  it.each(along)("%s: %s is allowed", async (file, code) => {
    expect(await restricted(file, code)).toEqual([]);
  });
});
