// Two "clusters" on one machine: network namespaces joined by a veth pair (the underlay,
// 192.0.2.0/24), each with a loopback address standing for its pod network (203.0.113.0/25
// and 203.0.113.128/25). Names carry the branch and the pid, so parallel runs never collide
// (UAPI sockets of every namespace share /var/run/wireguard/). destroy() kills every process
// left in the namespaces and deletes them; it runs even when a test fails.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { requireProgram, requireRoot } from "../support/programs.js";

export interface Side {
  readonly ns: string;
  readonly veth: string;
  readonly iface: string;
  readonly underlay: string;
  readonly tunnel: string;
  readonly podCidr: string;
  readonly podAddress: string;
}

const TAG = `mesh${process.pid}`;

function sh(args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Namespaces of earlier runs whose process died before its cleanup (SIGKILL): delete them. */
function sweepStale(): void {
  const names = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").map((l) => l.split(" ")[0] ?? "");
  for (const ns of names) {
    const m = /^zt-mesh(\d+)-/.exec(ns);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      alive = false;
    }
    if (alive) continue;
    for (const pid of spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone already
      }
    }
    spawnSync("ip", ["netns", "del", ns]);
  }
}

export class Lab {
  readonly a: Side;
  readonly b: Side;
  private readonly children = new Set<ChildProcess>();

  private constructor(id: string) {
    const side = (s: "a" | "b", n: number): Side => ({
      ns: `zt-${TAG}-${id}${s}`,
      veth: `v${TAG}${id}${s}`.slice(0, 15),
      iface: `wg${TAG}${id}${s}`.slice(0, 15),
      underlay: `192.0.2.${n}`,
      tunnel: `198.51.100.${n}`,
      podCidr: `203.0.113.${n === 1 ? 0 : 128}/25`,
      podAddress: `203.0.113.${n === 1 ? 1 : 129}`,
    });
    this.a = side("a", 1);
    this.b = side("b", 2);
  }

  /** Needs root, ip, wg and wireguard-go: fails (never skips) with the reason when one is missing. */
  static create(id: string): Lab {
    requireRoot("the WireGuard tunnel test (network namespaces, TUN devices)");
    for (const p of ["ip", "wg", "wireguard-go"]) requireProgram(p);
    sweepStale();
    const lab = new Lab(id);
    try {
      for (const s of [lab.a, lab.b]) {
        sh(["netns", "add", s.ns]);
        sh(["-n", s.ns, "link", "set", "lo", "up"]);
        sh(["-n", s.ns, "address", "add", `${s.podAddress}/32`, "dev", "lo"]);
      }
      sh(["link", "add", lab.a.veth, "netns", lab.a.ns, "type", "veth", "peer", "name", lab.b.veth, "netns", lab.b.ns]);
      for (const s of [lab.a, lab.b]) {
        sh(["-n", s.ns, "address", "add", `${s.underlay}/24`, "dev", s.veth]);
        sh(["-n", s.ns, "link", "set", s.veth, "up"]);
      }
    } catch (e) {
      lab.destroy();
      throw e;
    }
    return lab;
  }

  /** A process inside a namespace (killed by destroy()). */
  spawn(side: Side, program: string, args: readonly string[]): ChildProcess {
    const child = spawn("ip", ["netns", "exec", side.ns, program, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  /** Runs to completion inside a namespace. */
  run(side: Side, program: string, args: readonly string[], input?: string): { code: number; out: string; err: string } {
    const r = spawnSync("ip", ["netns", "exec", side.ns, program, ...args], { encoding: "utf8", ...(input !== undefined ? { input } : {}) });
    return { code: r.status ?? 1, out: r.stdout, err: r.stderr };
  }

  ip(side: Side, args: readonly string[]): string {
    return sh(["-n", side.ns, ...args]);
  }

  destroy(): void {
    for (const c of this.children) c.kill("SIGKILL");
    for (const s of [this.a, this.b]) {
      const pids = spawnSync("ip", ["netns", "pids", s.ns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone already
        }
      }
      spawnSync("ip", ["netns", "del", s.ns]);
      rmSync(`/var/run/wireguard/${s.iface}.sock`, { force: true });
    }
  }
}
