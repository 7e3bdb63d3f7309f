// zt kubeconfig <route-host> [--proxy addr:port] [--ca file] [-o file]: a kubeconfig whose cluster
// is the access proxy's route to a Kubernetes API and whose credential is `zt kube-credential`
// (an exec plugin, client.authentication.k8s.io/v1): kubectl gets the operator's proxy token,
// signing in with the browser when there is none. The proxy then calls the API server with the
// route's own credential and, with `impersonate: true`, as the operator (docs/proxy.md).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { writeFileDurable } from "../common/durable-file.js";
import { EXIT, UsageError } from "./io.js";
import { parseTarget, tokenFor } from "./proxy-client.js";

const CREDENTIAL_USAGE = "usage: zt kube-credential <route-host> [--proxy addr:port] [--ca file.pem] [--no-browser]";
const USAGE = "usage: zt kubeconfig <route-host> [--proxy addr:port] [--ca file.pem] [--command zt] [-o kubeconfig]";

export async function kubeconfigCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { proxy: { type: "string" }, ca: { type: "string" }, command: { type: "string" }, output: { type: "string", short: "o" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const t = parseTarget(positionals[0], values);
  const name = t.host;
  const args = ["kube-credential", t.host, ...(values.proxy ? ["--proxy", values.proxy] : []), ...(values.ca ? ["--ca", values.ca] : [])];
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name,
        cluster: {
          server: `https://${t.host}:${t.dialPort}`,
          ...(values.ca ? { "certificate-authority-data": Buffer.from(readFileSync(values.ca)).toString("base64") } : {}),
        },
      },
    ],
    users: [
      {
        name: `zt@${name}`,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1",
            command: values.command ?? "zt",
            args,
            interactiveMode: "IfAvailable",
            provideClusterInfo: false,
          },
        },
      },
    ],
    contexts: [{ name, context: { cluster: name, user: `zt@${name}` } }],
    "current-context": name,
  };
  const text = stringify(config);
  if (values.output) await writeFileDurable(values.output, text, 0o600);
  else process.stdout.write(text);
  return EXIT.ok;
}

/** The exec credential plugin: prints an ExecCredential with the proxy token (kubectl calls it). */
export async function kubeCredentialCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { proxy: { type: "string" }, ca: { type: "string" }, "no-browser": { type: "boolean", default: false }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(CREDENTIAL_USAGE + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(CREDENTIAL_USAGE);
  const t = parseTarget(positionals[0], values);
  // Messages go to stderr: stdout is kubectl's.
  const tok = await tokenFor(t, (line) => process.stderr.write(`zt: ${line}\n`));
  process.stdout.write(
    JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: tok.token, expirationTimestamp: new Date(tok.expires_at).toISOString() },
    }) + "\n",
  );
  return EXIT.ok;
}
