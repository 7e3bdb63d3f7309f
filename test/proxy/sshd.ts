// A real OpenSSH server for the tunnel tests: on a high port of 127.0.0.1, with its own host key,
// config and authorized key in a temporary directory (nothing of the machine's sshd is used).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireProgram, requireRoot } from "../support/programs.js";

export interface Sshd {
  readonly port: number;
  readonly dir: string;
  /** The client's private key file (its public key is the only one authorized). */
  readonly clientKey: string;
  readonly knownHosts: string;
  close(): Promise<void>;
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export async function startSshd(port: number): Promise<Sshd> {
  requireRoot("sshd with its privilege separation");
  const sshd = requireProgram("sshd");
  const keygen = requireProgram("ssh-keygen");
  const dir = mkdtempSync(join(tmpdir(), `zt-proxy-sshd-${process.pid}-`));
  execFileSync(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  execFileSync(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_key.pub")));
  writeFileSync(join(dir, "known_hosts"), `ssh.zt.test ${readFileSync(join(dir, "host_key.pub"), "utf8")}`);
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host_key")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      "LogLevel ERROR",
    ].join("\n") + "\n",
  );
  // Debian's sshd needs its privilege separation directory.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const proc: ChildProcess = spawn(sshd, ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sshd exited (${proc.exitCode}): ${stderr}`);
    if (await accepting(port)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    dir,
    clientKey: join(dir, "client_key"),
    knownHosts: join(dir, "known_hosts"),
    async close() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
