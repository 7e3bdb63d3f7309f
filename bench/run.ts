// npm run bench [-- --quick] [-- --only name,name]: runs the benchmark sections, prints the
// tables and writes bench/results/<section>.json. Each section runs in a process of its own
// (one after the other), so no section measures in a heap, JIT state or page cache that an
// earlier one left behind.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { arch, cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import type { BenchFn, BenchSection, Cell } from "./types.js";

const SECTIONS = ["evaluator", "http", "hostile", "build", "audit", "proxywasm", "sidecar-sync", "replay", "identity", "replicas", "proxy", "audit-query"];

function table(s: BenchSection): string {
  if (s.rows.length === 0) return "(no rows)";
  const cols = Object.keys(s.rows[0]!);
  const cell = (v: Cell | undefined) => (v === null || v === undefined ? "" : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...s.rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ");
  return [line(cols), line(widths.map((w) => "-".repeat(w))), ...s.rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}

/** Pause between sections: the previous section's servers and databases finish exiting. */
const SETTLE_MS = 3000;

function sectionsToRun(only: Set<string> | null): string[] {
  return SECTIONS.filter((name) => (!only || only.has(name)) && existsSync(fileURLToPath(new URL(`./${name}.js`, import.meta.url))));
}

async function runSection(name: string, quick: boolean, outDir: string, machine: Record<string, unknown>): Promise<void> {
  const mod = (await import(fileURLToPath(new URL(`./${name}.js`, import.meta.url)))) as { run: BenchFn };
  const result = await mod.run({ quick });
  for (const s of Array.isArray(result) ? result : [result]) {
    process.stdout.write(`\n== ${s.title}\n${table(s)}\n${s.notes.map((n) => `  * ${n}`).join("\n")}\n`);
    writeFileSync(`${outDir}${s.name}.json`, JSON.stringify({ ...s, machine, at: new Date().toISOString(), quick }, null, 2) + "\n");
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const onlyIdx = args.indexOf("--only");
  const only = onlyIdx >= 0 ? new Set(args[onlyIdx + 1]!.split(",")) : null;
  const outDir = fileURLToPath(new URL("../../bench/results/", import.meta.url));
  mkdirSync(outDir, { recursive: true });
  const machine = { node: process.version, arch: arch(), cpus: cpus().length, cpu: cpus()[0]?.model ?? "?", memory_gb: Math.round(totalmem() / 2 ** 30) };
  const names = sectionsToRun(only);
  if (names.length === 1) return runSection(names[0]!, quick, outDir, machine);
  process.stdout.write(`machine: ${JSON.stringify(machine)}\n`);
  // A failing section does not cost the others their run: every section runs, the failures are
  // named at the end, and the exit code says that something failed.
  const failed: string[] = [];
  for (let i = 0; i < names.length; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, quick ? 500 : SETTLE_MS));
    const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...(quick ? ["--quick"] : []), "--only", names[i]!], { stdio: "inherit" });
    if (child.status !== 0) failed.push(`${names[i]} (exit ${child.status ?? child.signal})`);
  }
  if (failed.length > 0) throw new Error(`bench sections failed: ${failed.join(", ")}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
