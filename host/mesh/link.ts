// The interface around the WireGuard device, as wg-quick sets it up: created (kernel module
// or wireguard-go), the gateway's mesh address, link up, and a route per network behind a
// peer. Everything through `ip` (iproute2), reconciled to the declared state each time.
import { type ChildProcess, spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { parseCidr } from "../../compiler/mesh/cidr.js";
import { run, runChecked } from "./exec.js";
import { uapiSocket } from "./uapi.js";

export type CreateMode = "auto" | "kernel" | "userspace" | "none";

export interface LinkOptions {
  readonly iface: string;
  readonly create: CreateMode;
  readonly ip?: string;
  readonly wireguardGo?: string;
  readonly uapiDir?: string;
  /** Called with wireguard-go's exit (the interface is gone with it). */
  readonly onUserspaceExit?: (code: number | null) => void;
}

function canonical(cidr: string): string {
  const r = parseCidr(cidr);
  return r.ok ? r.cidr.text : cidr;
}

export class Link {
  private child: ChildProcess | null = null;
  private created = false;
  private readonly ip: string;

  constructor(private readonly opts: LinkOptions) {
    this.ip = opts.ip ?? "ip";
  }

  get iface(): string {
    return this.opts.iface;
  }

  async exists(): Promise<boolean> {
    return (await run(this.ip, ["link", "show", "dev", this.opts.iface])).code === 0;
  }

  /** Creates the interface when it is missing; returns how (or null when it was there). */
  async ensure(): Promise<"kernel" | "userspace" | null> {
    if (await this.exists()) return null;
    const mode = this.opts.create;
    if (mode === "none") throw new Error(`interface ${this.opts.iface} does not exist and --create none forbids creating it`);
    if (mode === "kernel" || mode === "auto") {
      const r = await run(this.ip, ["link", "add", "dev", this.opts.iface, "type", "wireguard"]);
      if (r.code === 0) {
        this.created = true;
        return "kernel";
      }
      if (mode === "kernel") throw new Error(`ip link add ${this.opts.iface} type wireguard: ${r.stderr.trim()}`);
    }
    await this.startUserspace();
    return "userspace";
  }

  private async startUserspace(): Promise<void> {
    const sock = uapiSocket(this.opts.iface, this.opts.uapiDir);
    // -f: stay in the foreground as our child, so the interface lives and dies with the agent.
    const child = spawn(this.opts.wireguardGo ?? "wireguard-go", ["-f", this.opts.iface], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => (stderr = (stderr + b.toString("utf8")).slice(-2000)));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    this.child = child;
    this.created = true;
    for (let i = 0; ; i++) {
      const ready = await stat(sock).then(
        () => true,
        () => false,
      );
      if (ready) break;
      const done = await Promise.race([exited.then((c) => `wireguard-go exited with ${c}: ${stderr.trim().split("\n").pop() ?? ""}`), spawnError.then((e) => `wireguard-go: ${e.message}`), sleep(20).then(() => null)]);
      if (done !== null) {
        this.child = null;
        throw new Error(done);
      }
      if (i > 500) throw new Error(`wireguard-go started but ${sock} did not appear`);
    }
    void exited.then((code) => {
      if (this.child === child) this.child = null;
      this.opts.onUserspaceExit?.(code);
    });
  }

  /** The gateway's mesh address (replacing any other of that family), link up, and the routes. */
  async configure(address: string, routes: readonly string[]): Promise<void> {
    const dev = this.opts.iface;
    const fam = address.includes(":") ? "-6" : "-4";
    const current = JSON.parse((await runChecked(this.ip, ["-j", fam, "address", "show", "dev", dev])) || "[]") as Array<{ addr_info?: Array<{ local: string; prefixlen: number; scope?: string }> }>;
    const have = (current[0]?.addr_info ?? []).filter((a) => a.scope !== "link").map((a) => `${a.local}/${a.prefixlen}`);
    for (const a of have) if (a !== address) await runChecked(this.ip, ["address", "del", a, "dev", dev]);
    if (!have.includes(address)) await runChecked(this.ip, ["address", "add", address, "dev", dev]);
    await runChecked(this.ip, ["link", "set", "dev", dev, "up"]);
    await this.routes(routes);
  }

  private async routes(wanted: readonly string[]): Promise<void> {
    const dev = this.opts.iface;
    const want = new Set(wanted.map(canonical));
    const have = new Set<string>();
    for (const fam of ["-4", "-6"]) {
      const rows = JSON.parse((await runChecked(this.ip, ["-j", fam, "route", "show", "dev", dev])) || "[]") as Array<{ dst: string; protocol?: string }>;
      for (const r of rows) {
        // The kernel's own routes (the address's subnet, IPv6 link-local) are not ours to manage.
        if (r.protocol === "kernel" || r.dst.startsWith("fe80:")) continue;
        const dst = r.dst.includes("/") ? r.dst : `${r.dst}/${r.dst.includes(":") ? 128 : 32}`;
        have.add(dst);
        if (!want.has(dst)) await runChecked(this.ip, ["route", "del", dst, "dev", dev]);
      }
    }
    for (const r of want) if (!have.has(r)) await runChecked(this.ip, ["route", "replace", r, "dev", dev]);
  }

  /** Removes the interface if this agent created it (a pre-existing one is left as found). */
  async close(): Promise<void> {
    if (!this.created) return;
    this.created = false;
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null) {
      const gone = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await gone;
    } else if (await this.exists()) {
      await run(this.ip, ["link", "del", "dev", this.opts.iface]);
    }
  }
}
