// npm test's setup step decides right: nothing to do when everything is there; apt-get (update,
// install, services stopped) as root on Debian, retrying one by one when a package is
// unavailable; and where it cannot install, one message with every missing package, why the
// tests need it, and the command that installs it. The commands go to a recording runner: the
// real machine already has the packages, and this suite must not remove them to prove it.
import { describe, expect, it } from "vitest";
import { findPostgresServer, PROGRAM_PACKAGES, requireProgram, requirePostgresServer, SYSTEM_PACKAGES, type SystemPackage } from "../support/programs.js";
import { ensureSystemPackages, type SetupContext } from "./system-packages.js";

function fake(pkgs: Array<{ pkg: string; present: boolean; services?: string[]; installs?: boolean }>, over: Partial<SetupContext> = {}) {
  const state = new Map(pkgs.map((p) => [p.pkg, p.present]));
  const lines: string[] = [];
  const commands: string[] = [];
  const packages: SystemPackage[] = pkgs.map((p) => ({
    pkg: p.pkg,
    provides: `${p.pkg}-tool`,
    why: `the ${p.pkg} tests`,
    find: () => (state.get(p.pkg) ? `/usr/bin/${p.pkg}-tool` : null),
    ...(p.services ? { services: p.services } : {}),
  }));
  const ctx: SetupContext = {
    packages,
    out: (l) => lines.push(l),
    run: (cmd, args) => {
      commands.push([cmd, ...args].join(" "));
      if (cmd === "apt-get" && args[0] === "install") {
        const named = args.filter((a) => state.has(a));
        // An unavailable package fails the whole transaction, as apt-get does.
        if (named.some((n) => pkgs.find((p) => p.pkg === n)?.installs === false)) return { ok: false, output: "E: Unable to locate package" };
        for (const n of named) state.set(n, true);
      }
      return { ok: true, output: "" };
    },
    cannotInstall: () => null,
    systemd: true,
    ...over,
  };
  return { ctx, lines, commands };
}

describe("npm test setup: system packages", () => {
  it("does nothing and says nothing when everything is installed", () => {
    const { ctx, lines, commands } = fake([{ pkg: "a", present: true }]);
    expect(ensureSystemPackages(ctx)).toEqual({ installed: [], missing: [] });
    expect(lines).toEqual([]);
    expect(commands).toEqual([]);
  });

  it("as root on Debian: installs only what is missing, quietly, then stops the services those packages started", () => {
    const { ctx, commands } = fake([
      { pkg: "prometheus", present: false, services: ["prometheus"] },
      { pkg: "iproute2", present: true },
      { pkg: "chromium", present: false },
    ]);
    expect(ensureSystemPackages(ctx)).toEqual({ installed: ["prometheus", "chromium"], missing: [] });
    expect(commands[0]).toMatch(/^apt-get update -qq/);
    expect(commands[1]).toMatch(/^apt-get install -y -qq --no-install-recommends .* prometheus chromium$/);
    expect(commands.slice(2)).toEqual(["systemctl disable --now --quiet prometheus"]);
    const sysv = fake([{ pkg: "prometheus", present: false, services: ["prometheus"] }], { systemd: false });
    ensureSystemPackages(sysv.ctx);
    expect(sysv.commands.at(-1)).toBe("service prometheus stop");
  });

  it("one unavailable package does not keep the others out, and is reported with how to get it", () => {
    const { ctx, lines, commands } = fake([
      { pkg: "wireguard-go", present: false, installs: false },
      { pkg: "psql", present: false },
    ]);
    const r = ensureSystemPackages(ctx);
    expect(r.installed).toEqual(["psql"]);
    expect(r.missing.map((p) => p.pkg)).toEqual(["wireguard-go"]);
    expect(commands.filter((c) => c.startsWith("apt-get install"))).toHaveLength(3);
    const text = lines.join("\n");
    expect(text).toContain("wireguard-go  wireguard-go-tool: the wireguard-go tests");
    expect(text).toContain("apt-get install -y --no-install-recommends wireguard-go");
  });

  it("not root, or not Debian: runs nothing, names every missing package, why, and the command", () => {
    const { ctx, lines, commands } = fake(
      [
        { pkg: "prometheus", present: false },
        { pkg: "chromium", present: false },
      ],
      { cannotInstall: () => "npm test is not running as root" },
    );
    expect(ensureSystemPackages(ctx).missing).toHaveLength(2);
    expect(commands).toEqual([]);
    const text = lines.join("\n");
    expect(text).toContain("npm test is not running as root");
    expect(text).toContain("sudo apt-get install -y --no-install-recommends prometheus chromium");
    expect(text).toContain("the chromium tests");
    expect(text).toContain("fails saying which package is missing");
  });

  it("on this machine (after the real setup ran) every listed package is present, and each requirement names its package", () => {
    for (const p of SYSTEM_PACKAGES) expect(p.find(), `${p.pkg} (${p.provides})`).not.toBeNull();
    expect(requireProgram("promtool")).toMatch(/promtool$/);
    expect(requirePostgresServer()).toBe(findPostgresServer());
    expect(PROGRAM_PACKAGES).toMatchObject({ promtool: "prometheus", wg: "wireguard-tools", sshd: "openssh-server", psql: "postgresql-client", ip: "iproute2" });
    expect(() => requireProgram("zt-no-such-program")).toThrow(/zt-no-such-program is not installed: .*apt-get install zt-no-such-program/);
  });
});
