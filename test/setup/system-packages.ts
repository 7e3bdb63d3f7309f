// npm test's setup step: the Debian packages the tests need (test/support/programs.ts lists them
// and why), installed quietly when they are missing and we can (Debian, root, network); otherwise
// one clear message saying what is missing and how to get it. vitest runs it as a global setup,
// so `npm test` and `npx vitest run <file>` both get it; `.ci/run` runs this file directly
// (`npm run test:setup`), which exits 1 if something is still missing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { findProgram, SYSTEM_PACKAGES, type SystemPackage } from "../support/programs.js";

export interface SetupReport {
  installed: string[];
  missing: SystemPackage[];
}

type Out = (line: string) => void;
type Run = (cmd: string, args: string[]) => { ok: boolean; output: string };

/** What the step looks at and acts on; the defaults are the real machine (tests pass fakes). */
export interface SetupContext {
  packages: readonly SystemPackage[];
  out: Out;
  run: Run;
  /** Why packages cannot be installed here, or null when they can (Debian, root). */
  cannotInstall(): string | null;
  systemd: boolean;
}

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: "noninteractive", NEEDRESTART_MODE: "a" };
// A fresh VM often runs unattended-upgrades at boot: wait for the dpkg lock instead of failing.
const APT_OPTS = ["-y", "-qq", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", "-o", "Dpkg::Use-Pty=0"];

function runCommand(cmd: string, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { env: APT_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return { ok: r.status === 0, output: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

function lastLines(text: string, n: number): string {
  return text.trim().split("\n").slice(-n).map((l) => `    ${l}`).join("\n");
}

function describe(list: readonly SystemPackage[]): string {
  const w = Math.max(...list.map((p) => p.pkg.length));
  return list.map((p) => `  ${p.pkg.padEnd(w)}  ${p.provides}: ${p.why}`).join("\n");
}

function cannotInstall(): string | null {
  if (process.platform !== "linux" || !existsSync("/etc/debian_version") || !findProgram("apt-get")) return "this is not a Debian system (no apt-get)";
  if (process.getuid?.() !== 0) return "npm test is not running as root";
  return null;
}

/** The package manager starts some services on install (sshd on :22, prometheus, a PostgreSQL cluster): the tests start their own. */
function stopServices(pkgs: readonly SystemPackage[], ctx: SetupContext): void {
  for (const s of pkgs.flatMap((p) => p.services ?? [])) {
    if (ctx.systemd) ctx.run("systemctl", ["disable", "--now", "--quiet", s]);
    else ctx.run("service", [s, "stop"]);
  }
}

function manualHelp(missing: readonly SystemPackage[], reason: string, { out }: SetupContext): void {
  const names = missing.map((p) => p.pkg).join(" ");
  out(`npm test setup: the tests need these Debian packages, and they are missing:\n${describe(missing)}`);
  out(`npm test setup: cannot install them here: ${reason}. Install them (Debian/Ubuntu: sudo apt-get install -y --no-install-recommends ${names}),`);
  out(`npm test setup: or run npm test as root on Debian. Until then, each test that needs one fails saying which package is missing.`);
}

function install(missing: readonly SystemPackage[], ctx: SetupContext): void {
  const { out, run } = ctx;
  const names = missing.map((p) => p.pkg);
  out(`npm test setup: installing ${missing.map((p) => `${p.pkg} (${p.provides.split(" ")[0]})`).join(", ")} with apt-get`);
  const started = Date.now();
  const update = run("apt-get", ["update", "-qq", "-o", "DPkg::Lock::Timeout=300"]);
  if (!update.ok) out(`npm test setup: apt-get update failed (no network, or no reachable mirror?):\n${lastLines(update.output, 5)}`);
  const all = run("apt-get", ["install", ...APT_OPTS, ...names]);
  if (!all.ok) {
    // One unavailable package must not keep the others out: retry them one by one.
    out(`npm test setup: apt-get install failed:\n${lastLines(all.output, 5)}`);
    for (const n of names) run("apt-get", ["install", ...APT_OPTS, n]);
  }
  stopServices(missing, ctx);
  out(`npm test setup: apt-get finished in ${Math.round((Date.now() - started) / 1000)} s`);
}

const REAL: SetupContext = {
  packages: SYSTEM_PACKAGES,
  out: (l) => void process.stderr.write(l + "\n"),
  run: runCommand,
  cannotInstall,
  systemd: existsSync("/run/systemd/system"),
};

/** Installs what is missing where it can; says what is still missing and how to get it. */
export function ensureSystemPackages(ctx: SetupContext = REAL): SetupReport {
  const missing = ctx.packages.filter((p) => p.find() === null);
  if (missing.length === 0) return { installed: [], missing: [] };
  const reason = ctx.cannotInstall();
  if (reason) {
    manualHelp(missing, reason, ctx);
    return { installed: [], missing };
  }
  install(missing, ctx);
  const still = missing.filter((p) => p.find() === null);
  if (still.length > 0) manualHelp(still, "apt-get could not install them (see above)", ctx);
  return { installed: missing.filter((p) => !still.includes(p)).map((p) => p.pkg), missing: still };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const report = ensureSystemPackages();
  if (report.missing.length === 0) process.stderr.write(`npm test setup: every system package the tests need is installed\n`);
  process.exitCode = report.missing.length === 0 ? 0 : 1;
}
