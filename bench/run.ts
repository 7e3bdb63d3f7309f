// npm run bench [-- --quick] [-- --only name,name]: runs every benchmark section in one
// process, prints the tables and writes bench/results/<section>.json.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { arch, cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import type { BenchFn, BenchSection, Cell } from "./types.js";

const SECTIONS = ["evaluator", "http", "audit", "proxywasm"];

function table(s: BenchSection): string {
  if (s.rows.length === 0) return "(no rows)";
  const cols = Object.keys(s.rows[0]!);
  const cell = (v: Cell | undefined) => (v === null || v === undefined ? "" : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...s.rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ");
  return [line(cols), line(widths.map((w) => "-".repeat(w))), ...s.rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const onlyIdx = args.indexOf("--only");
  const only = onlyIdx >= 0 ? new Set(args[onlyIdx + 1]!.split(",")) : null;
  const outDir = fileURLToPath(new URL("../../bench/results/", import.meta.url));
  mkdirSync(outDir, { recursive: true });
  const machine = { node: process.version, arch: arch(), cpus: cpus().length, cpu: cpus()[0]?.model ?? "?", memory_gb: Math.round(totalmem() / 2 ** 30) };
  process.stdout.write(`machine: ${JSON.stringify(machine)}\n`);
  for (const name of SECTIONS) {
    if (only && !only.has(name)) continue;
    const file = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
    if (!existsSync(file)) continue;
    const mod = (await import(file)) as { run: BenchFn };
    const result = await mod.run({ quick });
    for (const s of Array.isArray(result) ? result : [result]) {
      process.stdout.write(`\n== ${s.title}\n${table(s)}\n${s.notes.map((n) => `  * ${n}`).join("\n")}\n`);
      writeFileSync(`${outDir}${s.name}.json`, JSON.stringify({ ...s, machine, at: new Date().toISOString(), quick }, null, 2) + "\n");
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
