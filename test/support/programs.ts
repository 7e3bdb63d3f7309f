// System programs the tests need (promtool, chromium, wg, wireguard-go, sshd, psql, ...). A test
// that needs one calls requireProgram(): when it is absent the test fails with that reason and
// the fix; it never skips. `npm test`'s setup step installs them where it can (Debian, root).
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** The Debian package that provides each program the tests use. */
export const PROGRAM_PACKAGES: Readonly<Record<string, string>> = {
  promtool: "prometheus",
  chromium: "chromium",
  wg: "wireguard-tools",
  "wireguard-go": "wireguard-go",
  sshd: "openssh-server",
  ssh: "openssh-client",
  "ssh-keygen": "openssh-client",
  psql: "postgresql-client",
  ip: "iproute2",
};

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

/** The path of `name`; throws, naming the package to install, when it is absent. */
export function requireProgram(name: string): string {
  const found = findProgram(name);
  if (found) return found;
  const pkg = PROGRAM_PACKAGES[name] ?? name;
  throw new Error(`${name} is not installed: npm test's setup step installs the Debian package "${pkg}" when run as root on Debian; otherwise run: apt-get install ${pkg}`);
}

/** Throws unless the tests run as root (network namespaces, WireGuard interfaces, sshd privilege separation). */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${what} needs root (CI runs as root); run npm test as root to include it`);
}
