// System programs the tests need (promtool, chromium, wg, wireguard-go, sshd, psql, ...). A test
// that needs one calls requireProgram(): when it is absent the test fails with that reason and
// the fix; it never skips. `npm test`'s setup step (test/setup/system-packages.ts) installs the
// packages below where it can (Debian, as root) before any test runs.
import { accessSync, constants, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";

/** A Debian package the tests need, and how to tell that it is there. */
export interface SystemPackage {
  /** The Debian package. */
  pkg: string;
  /** What the tests use from it (a program name, or a description). */
  provides: string;
  /** Why the tests need it (printed when it is missing). */
  why: string;
  /** The path of what it provides, or null when absent. */
  find(): string | null;
  /** Services the package starts on install; the setup step stops and disables them. */
  services?: readonly string[];
}

const program = (pkg: string, name: string, why: string, services?: readonly string[]): SystemPackage => ({
  pkg,
  provides: name,
  why,
  find: () => findProgram(name),
  ...(services ? { services } : {}),
});

/** Everything the suite needs from the system, one package per line. */
export const SYSTEM_PACKAGES: readonly SystemPackage[] = [
  program("prometheus", "promtool", "`promtool check metrics` validates the /metrics exposition", ["prometheus"]),
  program("chromium", "chromium", "the console's browser tests (playwright-core drives it; no browser download)"),
  program("wireguard-tools", "wg", "the WireGuard mesh tests configure real interfaces"),
  program("wireguard-go", "wireguard-go", "userspace WireGuard where the kernel module is unavailable"),
  program("openssh-server", "sshd", "SSH through the operator access proxy reaches a real sshd", ["ssh"]),
  program("openssh-client", "ssh", "a real ssh client through the operator access proxy"),
  program("openssh-client", "ssh-keygen", "host and client keys for the sshd behind the operator access proxy"),
  program("postgresql-client", "psql", "a real psql through the operator access proxy"),
  program("iproute2", "ip", "network namespaces for the mesh tests"),
  {
    pkg: "postgresql",
    provides: "PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin)",
    why: "multi-process tests that run a PostgreSQL server of the distribution",
    find: () => findPostgresServer(),
    services: ["postgresql"],
  },
];

/** Program name -> the Debian package that provides it. */
export const PROGRAM_PACKAGES: Readonly<Record<string, string>> = Object.fromEntries(
  SYSTEM_PACKAGES.filter((p) => !p.provides.includes(" ")).map((p) => [p.provides, p.pkg]),
);

const SBIN = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** The absolute path of `name` on PATH (plus the sbin directories), or null. */
export function findProgram(name: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...SBIN];
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

function missingMessage(what: string, pkg: string): string {
  return `${what} is not installed: npm test's setup step installs the Debian package "${pkg}" when run as root on Debian; otherwise run: apt-get install ${pkg}`;
}

/** The path of `name`; throws, naming the package to install, when it is absent. */
export function requireProgram(name: string): string {
  const found = findProgram(name);
  if (found) return found;
  throw new Error(missingMessage(name, PROGRAM_PACKAGES[name] ?? name));
}

const PG_LIB = "/usr/lib/postgresql";

/** The bin directory of the newest PostgreSQL server installed by the distribution, or null. */
export function findPostgresServer(): string | null {
  let versions: string[];
  try {
    versions = readdirSync(PG_LIB).filter((v) => /^\d+$/.test(v));
  } catch {
    return null;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(PG_LIB, v, "bin");
    try {
      accessSync(join(bin, "postgres"), constants.X_OK);
      accessSync(join(bin, "initdb"), constants.X_OK);
      return bin;
    } catch {
      // a client-only or partial installation
    }
  }
  return null;
}

/** The distribution's PostgreSQL server bin directory (postgres, initdb, pg_ctl); throws with the package to install. */
export function requirePostgresServer(): string {
  const found = findPostgresServer();
  if (found) return found;
  throw new Error(missingMessage(`the PostgreSQL server (${PG_LIB}/<version>/bin/postgres)`, "postgresql"));
}

/** Throws unless the tests run as root (network namespaces, WireGuard interfaces, sshd privilege separation). */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${what} needs root (CI runs as root); run npm test as root to include it`);
}
