// `--help` for the commands whose options parseArgs reads strictly: the usage on stdout, exit 0.
import { EXIT } from "./io.js";

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

export function printUsage(usage: string): number {
  process.stdout.write(usage + "\n");
  return EXIT.ok;
}
